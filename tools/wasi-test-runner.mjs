// Runs a wasm32-wasip1 cargo test binary under Node's built-in WASI
// (node:wasi, Node >= 20). Cargo calls it as the target runner:
//
//   CARGO_TARGET_WASM32_WASIP1_RUNNER="node tools/wasi-test-runner.mjs" \
//     cargo test --target wasm32-wasip1 --lib --test policies
//
// (`make wasm-test`). What it does:
//
// - Imports that are not WASI (the proxy-wasm host functions the filter
//   module imports from "env") are stubs that throw if called: the unit tests
//   never call the host.
// - On wasm32-wasip1 a panic aborts the whole instance, so one failing test
//   would stop the run and lose its message. The runner therefore lists the
//   tests, then runs each one in a fresh instance (`--exact NAME
//   --nocapture`), and prints libtest-style lines and a summary; the output
//   of a failing test (its panic message) is shown after the list. This is
//   libtest's own strategy for panic=abort targets, done from outside.
// - Each test runs in its own Node process (this script again, with
//   MCP_WASI_ONE_TEST=1): instantiating the 80 MB debug module 150 times in
//   one process made Node itself crash now and then (SIGSEGV, at a different
//   test each time). A test that crashes its process is reported as failed,
//   with the signal.
// - The workspace root (MCP_WASI_ROOT, else the current directory, where
//   `make wasm-test` runs cargo) is visible to the tests under its own
//   absolute path, so the crates' env!("CARGO_MANIFEST_DIR")/../.. paths
//   (policies/, tests/fixtures/) work; nothing else of the file system is.
// - `--list`, `--help` and similar are passed straight through.
//
// Exit status: 0 when every test passed, 101 (libtest's) when one failed.

import { readFileSync, openSync, closeSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';
import { WASI } from 'node:wasi';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const scriptPath = fileURLToPath(import.meta.url);

const [wasmPath, ...args] = process.argv.slice(2);
if (!wasmPath) {
  console.error('usage: node wasi-test-runner.mjs TEST.wasm [test-harness args...]');
  process.exit(2);
}
const root = process.env.MCP_WASI_ROOT || process.cwd();
const module = await WebAssembly.compile(readFileSync(wasmPath));

// Run the binary once with `argv`; stdout/stderr go to the given fds.
async function runOnce(argv, fds = {}) {
  const wasi = new WASI({
    version: 'preview1',
    args: [wasmPath, ...argv],
    env: { ...process.env, RUST_BACKTRACE: '0' },
    preopens: { [root]: root },
    returnOnExit: true,
    stdout: fds.stdout ?? 1,
    stderr: fds.stderr ?? 2,
  });
  const imports = wasi.getImportObject();
  for (const imp of WebAssembly.Module.imports(module)) {
    if (imports[imp.module]?.[imp.name]) continue;
    imports[imp.module] ??= {};
    imports[imp.module][imp.name] = () => {
      throw new Error(`host function ${imp.module}.${imp.name} called outside a proxy`);
    };
  }
  const instance = await WebAssembly.instantiate(module, imports);
  // node:wasi refuses an instance that also exports `_initialize` (the
  // proxy-wasm module does); hand it the command entry point alone.
  const command = { exports: { memory: instance.exports.memory, _start: instance.exports._start } };
  try {
    return { code: wasi.start(command) };
  } catch (e) {
    return { code: 134, trap: String(e && e.message ? e.message : e) };
  }
}

// Run with output captured in files; returns { code, stdout, stderr, trap }.
const scratch = mkdtempSync(join(tmpdir(), 'wasi-test-'));
async function capture(argv) {
  const out = join(scratch, 'out');
  const err = join(scratch, 'err');
  const o = openSync(out, 'w');
  const e = openSync(err, 'w');
  let r;
  try {
    r = await runOnce(argv, { stdout: o, stderr: e });
  } finally {
    closeSync(o);
    closeSync(e);
  }
  return { ...r, stdout: readFileSync(out, 'utf8'), stderr: readFileSync(err, 'utf8') };
}

function finish(code) {
  rmSync(scratch, { recursive: true, force: true });
  process.exit(code);
}

const passThrough = ['--list', '--help', '-h', '--bench', '--format', '-Z'];
if (process.env.MCP_WASI_ONE_TEST === '1' || args.some((a) => passThrough.includes(a) || a.startsWith('--format='))) {
  const r = await runOnce(args);
  if (r.trap) console.error(r.trap);
  finish(r.code);
}

// Options that select tests are given to the listing; of those, the ones
// that also change how a test runs are given to each run.
const perTest = args.filter((a) => a === '--ignored' || a === '--include-ignored');
const listed = await capture(['--list', '--format', 'terse', ...args.filter((a) => a !== '--nocapture' && a !== '--no-capture' && a !== '--show-output' && !a.startsWith('--test-threads'))]);
if (listed.code !== 0) {
  process.stdout.write(listed.stdout);
  process.stderr.write(listed.stderr);
  if (listed.trap) console.error(listed.trap);
  finish(listed.code || 101);
}
const tests = listed.stdout
  .split('\n')
  .filter((l) => l.endsWith(': test'))
  .map((l) => l.slice(0, -': test'.length));

console.log(`\nrunning ${tests.length} tests (one wasm instance each)`);
const started = Date.now();
let passed = 0;
let ignored = 0;
const failures = [];
// One test in a child process; returns { code, stdout, stderr, trap }.
function runChild(argv) {
  const child = spawnSync(process.execPath, ['--no-warnings', scriptPath, wasmPath, ...argv], {
    env: { ...process.env, MCP_WASI_ONE_TEST: '1' },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    timeout: 300_000,
  });
  const trap = child.signal ? `the test's Node process was killed by ${child.signal}` : child.error ? String(child.error) : undefined;
  return { code: child.status ?? 134, stdout: child.stdout ?? '', stderr: child.stderr ?? '', trap };
}

for (const name of tests) {
  const r = runChild([name, '--exact', '--nocapture', '--test-threads=1', ...perTest]);
  if (r.code === 0 && /\b1 ignored\b/.test(r.stdout)) {
    ignored++;
    console.log(`test ${name} ... ignored`);
  } else if (r.code === 0) {
    passed++;
    console.log(`test ${name} ... ok`);
  } else {
    failures.push({ name, r });
    console.log(`test ${name} ... FAILED`);
  }
}
if (failures.length) {
  console.log('\nfailures:\n');
  for (const { name, r } of failures) {
    console.log(`---- ${name} ----`);
    const text = (r.stdout + r.stderr)
      .split('\n')
      .filter((l) => !/^(running 1 test|test result: |$)/.test(l))
      .join('\n');
    console.log(text);
    if (r.trap) console.log(`(wasm trap: ${r.trap})`);
    console.log('');
  }
  console.log('failures:');
  for (const { name } of failures) console.log(`    ${name}`);
}
const secs = ((Date.now() - started) / 1000).toFixed(2);
const status = failures.length ? 'FAILED' : 'ok';
console.log(`\ntest result: ${status}. ${passed} passed; ${failures.length} failed; ${ignored} ignored; 0 measured; 0 filtered out; finished in ${secs}s\n`);
finish(failures.length ? 101 : 0);
