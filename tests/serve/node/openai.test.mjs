// `uml serve` driven by the official `openai` npm package, unmodified: models, chat and text
// completions (streamed and not, equal to each other and to llama.cpp's greedy fixtures),
// JSON-schema output, embeddings, and errors as the client's error classes.
//
// The server is the release `uml` binary (`cargo build --release -p uml-cli`) on a free
// loopback port; the models come from scripts/fetch-models.
import { spawn } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const MODELS = process.env.UML_MODELS ?? path.join(REPO, 'models');
const UML = path.join(REPO, 'target/release/uml');
const KEY = 'node-test-key-1';

/** A greedy fixture: its prompt or messages, and the trusted prefix every recorded CPU path
 *  agrees on (`trusted_tokens`, `trusted_completion`; see tests/fixtures/README.md). */
function fixture(name) {
  const f = JSON.parse(readFileSync(path.join(REPO, 'tests/fixtures', name), 'utf8'));
  return { ...f, n: f.trusted_tokens, text: f.trusted_completion };
}

let server;
let client;
let baseURL;

before(async () => {
  assert.ok(existsSync(UML), `${UML} is missing: cargo build --release -p uml-cli`);
  server = spawn(UML, [
    'serve', '--port', '0', '--ctx', '1024', '--threads', '2', '--api-key', KEY,
    '--model', `smollm2=${path.join(MODELS, 'SmolLM2-135M-Instruct.Q4_1.gguf')}`,
    '--model', `minilm=${path.join(MODELS, 'all-MiniLM-L6-v2.F32.gguf')}`,
  ], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: server.stdout });
  const first = await new Promise((resolve, reject) => {
    lines.once('line', resolve);
    server.once('exit', (code) => reject(new Error(`uml serve exited with ${code}`)));
  });
  const prefix = 'uml serve: listening on ';
  assert.ok(first.startsWith(prefix), first);
  baseURL = `${first.slice(prefix.length).trim()}/v1`;
  client = new OpenAI({ baseURL, apiKey: KEY, maxRetries: 0 });
});

after(() => {
  server?.kill('SIGTERM');
});

test('models are listed', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids.sort(), ['minilm', 'smollm2']);
});

test('chat, streamed and not, equals llama.cpp', async () => {
  const chat = fixture('smollm2_chat_greedy.json');
  const messages = chat.messages;
  const reply = await client.chat.completions.create({
    model: 'smollm2', messages, temperature: 0, max_tokens: chat.n,
  });
  assert.equal(reply.choices[0].message.content, chat.text);
  assert.equal(reply.usage.completion_tokens, chat.n);
  const stream = await client.chat.completions.create({
    model: 'smollm2', messages, temperature: 0, max_tokens: chat.n, stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let usage;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) text += c.delta.content ?? '';
  }
  assert.equal(text, chat.text);
  assert.equal(usage.completion_tokens, chat.n);
});

test('text completion equals llama.cpp', async () => {
  const count = fixture('smollm2_count_greedy.json');
  const reply = await client.completions.create({
    model: 'smollm2', prompt: count.prompt, temperature: 0, max_tokens: count.n,
  });
  assert.equal(reply.choices[0].text, count.text);
});

test('JSON-schema output parses', async () => {
  const schema = {
    type: 'object', properties: { city: { type: 'string' } },
    required: ['city'], additionalProperties: false,
  };
  const reply = await client.chat.completions.create({
    model: 'smollm2', temperature: 0, max_tokens: 48,
    messages: [{ role: 'user', content: 'Which city is the capital of France?' }],
    response_format: { type: 'json_schema', json_schema: { name: 'answer', schema } },
  });
  assert.equal(typeof JSON.parse(reply.choices[0].message.content).city, 'string');
});

test('embeddings', async () => {
  const result = await client.embeddings.create({ model: 'minilm', input: ['I love cats', 'I adore kittens'] });
  assert.equal(result.data.length, 2);
  assert.equal(result.data[0].embedding.length, 384);
});

test('errors are the client error classes', async () => {
  const wrong = new OpenAI({ baseURL, apiKey: 'wrong-key-123', maxRetries: 0 });
  await assert.rejects(wrong.models.list(), OpenAI.AuthenticationError);
  await assert.rejects(
    client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'hi' }] }),
    OpenAI.NotFoundError,
  );
  await assert.rejects(
    client.chat.completions.create({ model: 'smollm2', temperature: -1, messages: [{ role: 'user', content: 'hi' }] }),
    (e) => e instanceof OpenAI.BadRequestError && /temperature/.test(e.message),
  );
});
