// Drives headless Chromium (puppeteer-core with the system's chromium) through the dashboard
// of a running `treepo train`: waits for the cluster table and the live tree view to show
// nodes, checks the page's numbers against /api/cluster, opens a node's text, waits for the
// training charts, and saves a screenshot of each view.
// Usage: node browser_check.mjs <dashboard url> <screenshot dir> <node_modules dir> <chromium>
// Exit 0 and a JSON summary on stdout when every check passes; 1 and the reason otherwise.
import {createRequire} from 'node:module';
import {mkdirSync} from 'node:fs';

const [url, outDir, modules, chromium] = process.argv.slice(2);
const require = createRequire(modules.replace(/\/?$/, '/'));
const puppeteer = require('puppeteer-core');
mkdirSync(outDir, {recursive: true});

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
}

const browser = await puppeteer.launch({
  executablePath: chromium,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
});
const summary = {};
try {
  const page = await browser.newPage();
  await page.setViewport({width: 1400, height: 900});
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  // No network other than the dashboard's own origin: the page must work offline.
  const origin = new URL(url).origin;
  const foreign = [];
  await page.setRequestInterception(true);
  page.on('request', (r) => {
    if (r.url().startsWith(origin) || r.url().startsWith('ws://' + new URL(url).host) || r.url().startsWith('data:')) {
      r.continue();
    } else {
      foreign.push(r.url());
      r.abort();
    }
  });
  await page.goto(url, {waitUntil: 'load'});

  // Cluster view, live over the WebSocket.
  await page.waitForSelector('#workers tbody tr[data-worker-id]', {timeout: 60000});
  await page.waitForFunction(() => document.querySelector('#conn').textContent === 'live', {timeout: 30000});
  const readPage = () => page.evaluate(() => ({
    seq: window.treepoDashboard.renderedSeq,
    workers: [...document.querySelectorAll('#workers tbody tr')].map((tr) => ({
      id: Number(tr.dataset.workerId),
      name: tr.querySelector('.name').textContent.trim(),
      version: Number(tr.querySelector('.ver').textContent.slice(1)),
      pages: tr.querySelector('.pages').textContent,
      segments: Number(tr.querySelector('.segments').textContent),
    })),
    learners: [...document.querySelectorAll('#learners tbody tr')].map((tr) => Number(tr.dataset.learnerId)),
    live: Number(document.querySelector('#stat-live-workers').textContent),
    segments: Number(document.querySelector('#stat-segments').textContent),
    version: Number(document.querySelector('#stat-weight-version').textContent.slice(1)),
  }));
  const getApi = async () => (await fetch(url + 'api/cluster')).json();
  // The page's figures are bounded by the API's before and after it: what the page shows was
  // true at some snapshot between them.
  const before = await getApi();
  await page.waitForFunction((s) => window.treepoDashboard.renderedSeq >= s, {timeout: 10000}, before.seq);
  const shown = await readPage();
  const after = await getApi();
  check(shown.workers.length === after.workers.length, `worker rows ${shown.workers.length} vs ${after.workers.length}`);
  for (const w of shown.workers) {
    const a = after.workers.find((x) => x.id === w.id), b = before.workers.find((x) => x.id === w.id);
    check(a && b, `worker ${w.id} in /api/cluster`);
    check(w.name === a.name, `worker ${w.id} name ${w.name} vs ${a.name}`);
    check(w.pages.endsWith('/' + a.pages_capacity), `worker ${w.id} pages ${w.pages} vs capacity ${a.pages_capacity}`);
    check(b.weight_version <= w.version && w.version <= a.weight_version, `worker ${w.id} version ${w.version} within ${b.weight_version}..${a.weight_version}`);
    check(b.segments_done <= w.segments && w.segments <= a.segments_done, `worker ${w.id} segments ${w.segments} within ${b.segments_done}..${a.segments_done}`);
  }
  check(before.scheduler.segments <= shown.segments && shown.segments <= after.scheduler.segments,
        `segments ${shown.segments} within ${before.scheduler.segments}..${after.scheduler.segments}`);
  check(before.scheduler.weight_version <= shown.version && shown.version <= after.scheduler.weight_version, 'weight version');
  check(shown.live === after.scheduler.live_workers, `live workers ${shown.live} vs ${after.scheduler.live_workers}`);
  check(JSON.stringify(shown.learners) === JSON.stringify(after.learners.map((l) => l.id)), 'learner rows');
  summary.workers = shown.workers.length;
  await page.screenshot({path: outDir + '/cluster.png', fullPage: true});

  // Tree view: the trees grow live; click a node for its text.
  await page.click('nav button[data-view=trees]');
  await page.waitForFunction(() => document.querySelectorAll('#tree-svg circle.node').length > 0, {timeout: 60000});
  const first = await page.evaluate(() => ({n: document.querySelectorAll('#tree-svg circle.node').length,
                                             key: window.treepoDashboard.selectedTree}));
  await page.waitForFunction((f) => window.treepoDashboard.selectedTree !== f.key ||
      document.querySelectorAll('#tree-svg circle.node').length !== f.n, {timeout: 60000}, first);
  // A finished tree shows its leaves with rewards.
  await page.waitForSelector('#trees-finished li[data-key]', {timeout: 120000});
  // Clicks run inside the page: the lists and the drawing are re-rendered as deltas arrive, so
  // an element handle taken from outside may be detached by the time it is clicked.
  const click = (sel) => page.evaluate((s) => {
    const e = document.querySelector(s);
    if (!e) return false;
    e.dispatchEvent(new MouseEvent('click', {bubbles: true}));
    return true;
  }, sel);
  check(await click('#trees-finished li[data-key]'), 'a finished tree in the list');
  await page.waitForFunction(() => document.querySelectorAll('#tree-svg text.reward').length > 0, {timeout: 30000});
  const leaves = await page.evaluate(() => document.querySelectorAll('#tree-svg text.reward').length);
  check(await click('#tree-svg circle.node'), 'a node to click');
  await page.waitForFunction(() => !document.querySelector('#node-detail').classList.contains('hidden') &&
      document.querySelector('#node-detail pre').textContent.length > 0, {timeout: 30000});
  summary.tree_nodes = await page.evaluate(() => document.querySelectorAll('#tree-svg circle.node').length);
  summary.tree_leaf_labels = leaves;
  await page.screenshot({path: outDir + '/trees.png', fullPage: true});

  // Training view: every chart drawn, with at least two steps.
  await page.click('nav button[data-view=training]');
  await page.waitForFunction(() => document.querySelectorAll('#charts .uplot').length === 8 &&
      window.treepoDashboard.metrics.filter((m) => m.reward_mean !== undefined).length >= 2, {timeout: 180000});
  await new Promise((r) => setTimeout(r, 300));  // one animation frame for the last data
  summary.charts = await page.evaluate(() => document.querySelectorAll('#charts .uplot').length);
  await page.screenshot({path: outDir + '/training.png', fullPage: true});

  check(foreign.length === 0, 'requests outside the dashboard: ' + foreign.join(', '));
  check(errors.length === 0, 'page errors: ' + errors.join(' | '));
  console.log(JSON.stringify(summary));
} catch (e) {
  console.error(String(e.stack || e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
