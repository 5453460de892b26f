// An MCP server built with the official TypeScript SDK, for the end-to-end
// tests (tests/e2e/test_e2e_ts_sdk.py). Listens on 127.0.0.1 only.
//
//   node server.mjs --port 0 --mode sse|json|sse-stateless|json-stateless [--resumable] --log-file F
//
// Prints "READY <port>" once listening. Every JSON-RPC message it receives is
// appended to the log file as one JSON line (method, id, and the tool name or
// resource uri), so a test can see what reached the server. Exits by itself
// after --lifetime seconds (default 300) if nobody stops it.
import http from 'node:http';
import fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { InMemoryEventStore } from '@modelcontextprotocol/sdk/examples/shared/inMemoryEventStore.js';
import { z } from 'zod';

const { values: opts } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    mode: { type: 'string', default: 'sse' },
    'log-file': { type: 'string' },
    lifetime: { type: 'string', default: '300' },
    resumable: { type: 'boolean', default: false },
    // With --resumable: close the SSE stream of every tools/list and
    // tools/call before answering, so the answer reaches the client on the
    // GET stream it resumes with Last-Event-ID (2025-11-25 SSE polling).
    'close-streams': { type: 'boolean', default: false },
  },
});
const MODES = ['sse', 'json', 'sse-stateless', 'json-stateless'];
if (!MODES.includes(opts.mode)) {
  console.error(`--mode must be one of ${MODES.join(', ')}`);
  process.exit(2);
}
const stateless = opts.mode.endsWith('-stateless');
const enableJsonResponse = opts.mode.startsWith('json');

function record(message) {
  if (!opts['log-file']) return;
  for (const m of Array.isArray(message) ? message : [message]) {
    if (m === null || typeof m !== 'object') continue;
    const entry = { method: m.method ?? null, id: m.id ?? null };
    if (m.params?.name !== undefined) entry.name = m.params.name;
    if (m.params?.uri !== undefined) entry.uri = m.params.uri;
    fs.appendFileSync(opts['log-file'], JSON.stringify(entry) + '\n');
  }
}

function build() {
  const server = new McpServer({ name: 'ts-demo', version: '1.0.0' }, { capabilities: { logging: {} } });
  const text = (t) => ({ content: [{ type: 'text', text: t }] });
  server.registerTool('echo', { description: 'Echo the text back', inputSchema: { text: z.string() } },
    async ({ text: t }) => text(t));
  server.registerTool('add', {
    description: 'Add two numbers',
    inputSchema: { a: z.number(), b: z.number() },
    outputSchema: { sum: z.number() },
  }, async ({ a, b }) => ({ ...text(String(a + b)), structuredContent: { sum: a + b } }));
  server.registerTool('count', {
    description: 'Count to n, sending a log message and a progress notification per step',
    inputSchema: { n: z.number().int().min(1).max(20) },
  }, async ({ n }, extra) => {
    for (let i = 1; i <= n; i++) {
      await extra.sendNotification({ method: 'notifications/message', params: { level: 'info', data: `step ${i}` } });
      const token = extra._meta?.progressToken;
      if (token !== undefined) {
        await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: i, total: n } });
      }
    }
    return text(`counted to ${n}`);
  });
  server.registerTool('read_file', { description: 'Read a file', inputSchema: { path: z.string() } },
    async ({ path }) => text(`contents of ${path}`));
  server.registerTool('delete_record', { description: 'Delete a record', inputSchema: { id: z.number() } },
    async ({ id }) => text(`deleted ${id}`));
  server.registerTool('confirm', {
    description: 'Ask the user to confirm (elicitation), then say what they answered',
    inputSchema: { question: z.string() },
  }, async ({ question }) => {
    const r = await server.server.elicitInput({
      message: question,
      requestedSchema: { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] },
    });
    return text(`${r.action}:${JSON.stringify(r.content ?? null)}`);
  });
  server.registerTool('summarize', {
    description: 'Ask the client\'s model (sampling) and return its answer',
    inputSchema: { text: z.string() },
  }, async ({ text: t }) => {
    const r = await server.server.createMessage({
      messages: [{ role: 'user', content: { type: 'text', text: `Summarize: ${t}` } }],
      maxTokens: 50,
    });
    return text(`model said: ${r.content.type === 'text' ? r.content.text : '?'}`);
  });
  server.registerResource('readme', 'file:///workspace/README.md', { mimeType: 'text/markdown' },
    async (uri) => ({ contents: [{ uri: uri.href, text: '# workspace' }] }));
  server.registerResource('item', new ResourceTemplate('items://{id}', { list: undefined }), {},
    async (uri, { id }) => ({ contents: [{ uri: uri.href, text: `item ${id}` }] }));
  server.registerPrompt('greet', { description: 'Greet someone', argsSchema: { name: z.string() } },
    ({ name }) => ({ messages: [{ role: 'user', content: { type: 'text', text: `Hello ${name}` } }] }));
  if (opts['close-streams']) {
    for (const method of ['tools/list', 'tools/call']) {
      const handler = server.server._requestHandlers.get(method);
      server.server._requestHandlers.set(method, async (request, extra) => {
        extra.closeSSEStream?.();
        await new Promise((resolve) => setTimeout(resolve, 50));
        return handler(request, extra);
      });
    }
  }
  return server;
}

const sessions = new Map();

async function handle(req, res) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const raw = Buffer.concat(chunks).toString('utf8');
  if (new URL(req.url, 'http://127.0.0.1').pathname !== '/mcp') {
    // Anything but /mcp stands for an authorization server on the same
    // host (/token, /register …): it echoes what it got.
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ served: 'not-mcp', method: req.method, path: req.url, body: raw }));
    return;
  }
  let body;
  if (raw) {
    try {
      body = JSON.parse(raw);
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } }));
      return;
    }
    record(body);
  }
  if (stateless) {
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse });
    const server = build();
    res.on('close', () => { transport.close(); server.close(); });
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
    return;
  }
  const sid = req.headers['mcp-session-id'];
  let transport = sid ? sessions.get(sid) : undefined;
  if (!transport) {
    if (sid) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } }));
      return;
    }
    transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      enableJsonResponse,
      // Resumable streams: every SSE event gets an id, and each stream
      // opens with a priming event (an id and empty data, 2025-11-25).
      ...(opts.resumable ? { eventStore: new InMemoryEventStore(), retryInterval: 1000 } : {}),
      onsessioninitialized: (id) => sessions.set(id, transport),
    });
    transport.onclose = () => { if (transport.sessionId) sessions.delete(transport.sessionId); };
    await build().connect(transport);
  }
  await transport.handleRequest(req, res, body);
}

const httpServer = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    console.error('request failed:', err);
    if (!res.headersSent) res.writeHead(500);
    res.end();
  });
});
httpServer.listen(Number(opts.port), '127.0.0.1', () => {
  console.log(`READY ${httpServer.address().port}`);
});
setTimeout(() => process.exit(0), Number(opts.lifetime) * 1000).unref();
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
