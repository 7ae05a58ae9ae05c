// Joins native/helper/*.sh (and the perl frame decoder) into the one script that ddt uploads:
// dist/ddt-helper.sh. Run by `npm run build`. The order is fixed and nothing varies between
// runs (no dates, no paths), so the same sources always give the same bytes.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const parts = join(here, 'helper');
const out = process.argv[2] ?? join(here, '..', 'dist', 'ddt-helper.sh');

// Definitions first, the dispatch last: sh runs the file top to bottom.
const ORDER = ['common.sh', 'dd.sh', 'probe.sh', 'hash.sh', 'write.sh', 'zero.sh', 'sparse.sh', 'read.sh', 'units.sh', 'hasher.sh', 'serve.sh', 'housekeeping.sh', 'lock.sh', 'prehash.sh', 'leftovers.sh', 'main.sh'];
// `@@name@@` in a shell part becomes the text of native/helper/name, which goes inside single
// quotes: it must not hold one.
const EMBED = /@@([a-z0-9.-]+)@@/g;

function fail(msg) {
  process.stderr.write(`native/join.mjs: ${msg}\n`);
  process.exit(1);
}

function read(name) {
  const text = readFileSync(join(parts, name), 'utf8');
  if (text.includes('\r')) fail(`${name} has a carriage return`);
  return text;
}

const chunks = ORDER.map((name, i) => {
  let text = read(name);
  if (i === 0 && !text.startsWith('#!/bin/sh\n')) fail(`${name} must start with #!/bin/sh`);
  if (i > 0 && text.startsWith('#!')) fail(`${name}: only the first part has a #! line`);
  text = text.replace(EMBED, (_, file) => {
    const body = read(file).replace(/\n+$/, '');
    if (body.includes("'")) fail(`${file} holds a single quote: it cannot be embedded in '...'`);
    return body;
  });
  return text.endsWith('\n') ? text : `${text}\n`;
});

mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, chunks.join('\n'));
