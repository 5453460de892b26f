// Runs the wasm-loop binary under Node's WASI (V8, as in Envoy):
//   node [--no-liftoff] [--cpu-prof] bench/wasm-loop/run.mjs WASM [call|list|list-warm|both] [N]
// Imports that are not WASI (the proxy-wasm host functions the library
// brings along) are stubs that throw: the core never calls the host.
import { readFileSync } from 'node:fs';
import process from 'node:process';
import { WASI } from 'node:wasi';

const [wasmPath, ...args] = process.argv.slice(2);
const module = await WebAssembly.compile(readFileSync(wasmPath));
const wasi = new WASI({ version: 'preview1', args: [wasmPath, ...args], env: {}, returnOnExit: true });
const imports = wasi.getImportObject();
for (const imp of WebAssembly.Module.imports(module)) {
  if (imp.module === 'wasi_snapshot_preview1') continue;
  imports[imp.module] ??= {};
  imports[imp.module][imp.name] = () => { throw new Error(`host call ${imp.module}.${imp.name}`); };
}
const instance = await WebAssembly.instantiate(module, imports);
// The library's proxy-wasm entry (`_initialize`) is not WASI's business.
const { _initialize, ...exports } = instance.exports;
process.exitCode = wasi.start({ exports });
