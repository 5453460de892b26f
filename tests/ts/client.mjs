// An MCP client built with the official TypeScript SDK, for the end-to-end
// tests (tests/e2e/test_e2e_ts_sdk.py).
//
//   node client.mjs URL
//
// Runs a fixed scenario against URL and prints one JSON object: the
// negotiated protocol version and session, each step's outcome
// ({ok: true, result} or {ok: false, code, message}), and the log and
// progress notifications received. Every step has a timeout; exits non-zero
// only when the output cannot be produced.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  LoggingMessageNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';

const url = new URL(process.argv[2]);
const client = new Client(
  { name: 'mcp-policy-ts-e2e', version: '1' },
  { capabilities: { elicitation: {}, sampling: {} } },
);
const transport = new StreamableHTTPClientTransport(url);
const out = { steps: {}, logs: [], progress: [] };
client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => { out.logs.push(n.params.data); });
// The server's requests during a tool call: answered on the spot.
client.setRequestHandler(ElicitRequestSchema, async () => ({ action: 'accept', content: { ok: true } }));
client.setRequestHandler(CreateMessageRequestSchema, async () => ({
  role: 'assistant', model: 'test-model', content: { type: 'text', text: 'short' },
}));
const options = { timeout: 15000 };

async function step(name, fn) {
  try {
    const result = await fn();
    out.steps[name] = { ok: true, result: result ?? null };
  } catch (err) {
    out.steps[name] = { ok: false, code: err.code ?? null, message: String(err.message ?? err) };
  }
}

await step('connect', () => client.connect(transport, options));
out.protocol = transport.protocolVersion ?? null;
out.session = transport.sessionId ?? null;
await step('ping', () => client.ping(options));
await step('listTools', () => client.listTools(undefined, options));
await step('echo', () => client.callTool({ name: 'echo', arguments: { text: 'hello' } }, undefined, options));
await step('add', () => client.callTool({ name: 'add', arguments: { a: 2, b: 3 } }, undefined, options));
await step('count', () => client.callTool({ name: 'count', arguments: { n: 3 } }, undefined,
  { ...options, onprogress: (p) => out.progress.push(p.progress) }));
await step('readAllowed', () => client.callTool({ name: 'read_file', arguments: { path: '/workspace/notes.txt' } }, undefined, options));
await step('readDenied', () => client.callTool({ name: 'read_file', arguments: { path: '/etc/passwd' } }, undefined, options));
await step('deleteDenied', () => client.callTool({ name: 'delete_record', arguments: { id: 7 } }, undefined, options));
if (out.session) {
  // Server requests need a session (a stateless server cannot send them).
  await step('confirm', () => client.callTool({ name: 'confirm', arguments: { question: 'Proceed?' } }, undefined, options));
  await step('summarize', () => client.callTool({ name: 'summarize', arguments: { text: 'a long text' } }, undefined, options));
}
await step('setLevel', () => client.setLoggingLevel('debug', options));
await step('listResources', () => client.listResources(undefined, options));
await step('listTemplates', () => client.listResourceTemplates(undefined, options));
await step('readResource', () => client.readResource({ uri: 'file:///workspace/README.md' }, options));
await step('readTemplate', () => client.readResource({ uri: 'items://42' }, options));
await step('listPrompts', () => client.listPrompts(undefined, options));
await step('getPrompt', () => client.getPrompt({ name: 'greet', arguments: { name: 'Ada' } }, options));
if (out.session) await step('terminate', () => transport.terminateSession());
await step('close', () => client.close());
console.log(JSON.stringify(out));
process.exit(0);
