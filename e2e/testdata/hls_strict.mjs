// Validates HLS playlists with hls-parser in strict mode, which throws on
// the RFC 8216bis and Apple authoring-spec rules it knows.
//
//   node hls_strict.mjs MODULE_ROOT FILE...
//
// MODULE_ROOT is the directory holding node_modules (the Go module root).
// It prints one JSON line per file, {"file", "ok", "error"}, and exits 0
// once every file was read; a playlist that fails is reported, not an
// exit status, so that one run checks them all. Exit 2: bad usage or no
// hls-parser 0.16.1.
import {createRequire} from 'node:module';
import {readFileSync} from 'node:fs';
import {join} from 'node:path';

const [root, ...files] = process.argv.slice(2);
if (!root || files.length === 0) {
  console.error('usage: node hls_strict.mjs MODULE_ROOT FILE...');
  process.exit(2);
}
const require = createRequire(join(root, 'package.json'));
const want = '0.16.1';
const {version} = require('hls-parser/package.json');
if (version !== want) {
  console.error(`hls-parser ${version} installed, the checks are written for ${want}: run npm ci`);
  process.exit(2);
}
const HLS = require('hls-parser');
HLS.setOptions({strictMode: true});
for (const file of files) {
  try {
    HLS.parse(readFileSync(file, 'utf8'));
    console.log(JSON.stringify({file, ok: true}));
  } catch (err) {
    console.log(JSON.stringify({file, ok: false, error: String(err && err.message || err)}));
  }
}
