// CurveZMQ key files (docs/security.md) and the client side of the "keys on anything that is
// not loopback" rule.
//
// Files: NAME.pub holds the Z85 public key (40 characters) on one line; NAME.key holds the
// public key then the secret key, one per line, and must not be readable by group or others
// (mode 0600, as `treepo keys` writes it). Lines starting with '#' and blank lines are
// ignored.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "protocols/transport.h"

namespace treepo::protocols {

// kInvalidArgument unless `key` is 40 Z85 characters that decode to 32 bytes.
Status CheckZ85Key(const std::string& key);

// Writes DIR/NAME.pub and DIR/NAME.key (0600), creating DIR (0700) when missing.
// kAlreadyExists when either file exists (keys are never overwritten).
Status WriteKeyPairFiles(const std::string& dir, const std::string& name, const CurveKeyPair& pair);
// Reads a NAME.key file; kFailedPrecondition when group or others may read it.
Result<CurveKeyPair> ReadKeyPairFile(const std::string& path);
// Reads one NAME.pub file.
Result<std::string> ReadPublicKeyFile(const std::string& path);
// `path` is a .pub file (one key) or a directory: every *.pub file in it. kNotFound when the
// directory holds none.
Result<std::vector<std::string>> ReadPublicKeys(const std::string& path);

// Key settings of a worker or learner.
struct ClientKeyOptions {
  std::string scheduler_key_file;  // the scheduler's NAME.pub
  std::string key_file;            // this client's NAME.key
  bool insecure = false;           // connect to a non-loopback scheduler without keys

  Status Validate() const;
};

// The CURVE keys to connect to `endpoint` with: nullopt when none are configured and the
// endpoint is loopback (or `insecure`, which logs a warning). kInvalidArgument when the
// endpoint is not loopback and no keys are configured.
Result<std::optional<CurveClientKeys>> ResolveClientKeys(const ClientKeyOptions& options,
                                                         const std::string& endpoint);

}  // namespace treepo::protocols
