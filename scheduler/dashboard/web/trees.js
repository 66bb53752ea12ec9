// Tree view: lays a query's tree out left to right (the prompt at the left, one column per
// segment depth, leaves in order down the page) and draws it as SVG. Nodes are coloured by the
// worker that computed them; pending nodes (dispatched, not back) are hollow; finished paths
// carry their reward; paths the sampler cut (not leaves) are faded.
'use strict';

const TreeView = (() => {
  const PALETTE = ['#4299e1', '#ed8936', '#48bb78', '#9f7aea', '#f56565', '#38b2ac',
                   '#ecc94b', '#ed64a6', '#667eea', '#a0aec0'];
  const DX = 110, DY = 18, R = 6, LEFT = 40, TOP = 16;
  const NS = 'http://www.w3.org/2000/svg';

  function workerColour(id) { return id ? PALETTE[(id - 1) % PALETTE.length] : '#fff'; }

  // nodes: Map id -> node {id, parent, depth, worker, pending, leaf, reward, pruned, finish}.
  // Returns Map id -> {x, y} and the drawing's size.
  function layout(nodes) {
    const children = new Map();
    for (const n of nodes.values()) {
      const p = n.parent || 0;
      if (!children.has(p)) children.set(p, []);
      children.get(p).push(n.id);
    }
    for (const list of children.values()) list.sort((a, b) => a - b);
    const pos = new Map();
    let row = 0, maxDepth = 0;
    // Iterative post-order: a parent sits at the middle of its children.
    const place = (root) => {
      const stack = [[root, false]];
      while (stack.length) {
        const [id, done] = stack.pop();
        const kids = children.get(id) || [];
        if (!done && kids.length) {
          stack.push([id, true]);
          for (let i = kids.length - 1; i >= 0; --i) stack.push([kids[i], false]);
          continue;
        }
        const depth = id === 0 ? 0 : nodes.get(id).depth;
        maxDepth = Math.max(maxDepth, depth);
        let y;
        if (kids.length) {
          y = (pos.get(kids[0]).y + pos.get(kids[kids.length - 1]).y) / 2;
        } else {
          y = TOP + row * DY;
          row += 1;
        }
        pos.set(id, {x: LEFT + depth * DX, y});
      }
    };
    place(0);
    // Nodes whose parent is unknown (should not happen) go below, so nothing is lost.
    for (const n of nodes.values()) if (!pos.has(n.id)) { pos.set(n.id, {x: LEFT + n.depth * DX, y: TOP + row * DY}); row++; }
    return {pos, width: LEFT + (maxDepth + 1) * DX + 60, height: TOP + Math.max(row, 1) * DY + 10};
  }

  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }

  // Draws `nodes` into `svg`; onClick(nodeId) on a click. `selected` is highlighted.
  function draw(svg, nodes, selected, onClick) {
    const {pos, width, height} = layout(nodes);
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.setAttribute('width', width);
    svg.setAttribute('height', height);
    const edges = el('g', {}, svg), dots = el('g', {}, svg), labels = el('g', {}, svg);
    const root = pos.get(0);
    el('rect', {x: root.x - 7, y: root.y - 7, width: 14, height: 14, class: 'prompt'}, dots)
        .appendChild(document.createElementNS(NS, 'title')).textContent = 'prompt';
    for (const n of nodes.values()) {
      const p = pos.get(n.id), q = pos.get(n.parent || 0) || root;
      el('path', {class: 'edge', d: `M${q.x},${q.y} C${(q.x + p.x) / 2},${q.y} ${(q.x + p.x) / 2},${p.y} ${p.x},${p.y}`}, edges);
      const cls = ['node'];
      if (n.pending) cls.push('pending');
      if (n.pruned) cls.push('pruned');
      if (n.id === selected) cls.push('sel');
      const c = el('circle', {cx: p.x, cy: p.y, r: R, fill: workerColour(n.worker), class: cls.join(' '),
                              'data-node': n.id}, dots);
      const tip = `node ${n.id}, depth ${n.depth}` + (n.worker ? `, worker ${n.worker}, v${n.version}` : ', pending') +
          (n.finish ? `, ${n.finish}` : '') + (n.pruned ? ', cut' : '');
      c.appendChild(document.createElementNS(NS, 'title')).textContent = tip;
      c.addEventListener('click', () => onClick(n.id));
      if (n.leaf) {
        const t = el('text', {x: p.x + 10, y: p.y, class: 'reward ' + (n.reward > 0 ? 'good' : 'bad')}, labels);
        t.textContent = (n.reward > 0 ? '✓ ' : '✗ ') + Number(n.reward).toFixed(2) + (n.finish ? ` ${n.finish}` : '');
      } else if (n.pruned) {
        el('text', {x: p.x + 9, y: p.y, class: 'reward bad'}, labels).textContent = '✂';
      }
    }
    return nodes.size;
  }

  return {draw, workerColour, PALETTE};
})();
