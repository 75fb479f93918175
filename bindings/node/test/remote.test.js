// Remote models: `Loader.remote` and the manager's `registerRemote` / `setFallback` against a
// `uml serve` on a free loopback port serving SmolLM2 as "smollm2" (the release `uml` binary:
// `cargo build --release -p uml-cli`): greedy chat equal to llama.cpp's fixture, streaming,
// the errors of a model not served, an unreachable endpoint and bad arguments, a broken local
// file answered by its fallback, and the endpoint check run off the event loop.
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')
const { spawn } = require('node:child_process')
const { createInterface } = require('node:readline')
const uml = require('..')
const { REPO, modelPath, fixture } = require('./helpers')

const UML = path.join(REPO, 'target/release/uml')

let server
let url
let dir

test.before(async () => {
  assert.ok(fs.existsSync(UML), `${UML} is missing: cargo build --release -p uml-cli`)
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uml-remote-'))
  server = spawn(UML, [
    'serve', '--port', '0', '--ctx', '1024', '--threads', '2', '--model', `smollm2=${modelPath()}`,
  ], { stdio: ['ignore', 'pipe', 'inherit'] })
  // The readline interface keeps reading the server's stdout, so it never blocks on the pipe.
  const lines = createInterface({ input: server.stdout })
  const first = await new Promise((resolve, reject) => {
    lines.once('line', resolve)
    server.once('exit', (code) => reject(new Error(`uml serve exited with ${code}`)))
  })
  const prefix = 'uml serve: listening on '
  assert.ok(first.startsWith(prefix), first)
  url = `${first.slice(prefix.length).trim()}/v1`
})

test.after(() => {
  server?.kill('SIGTERM')
  if (dir) fs.rmSync(dir, { recursive: true, force: true })
})

test('a remote model generates, chats and streams', async () => {
  const model = await uml.Loader.remote({ url, model: 'smollm2' })
  try {
    assert.equal(model.info.backend, 'remote')
    const done = await model.generate('The capital of France is', { maxTokens: 8, temperature: 0 })
    assert.ok(done.text.length > 0)
    assert.ok(['stop', 'length'].includes(done.finishReason), done.finishReason)
    const chat = fixture('smollm2_chat_greedy.json')
    const reply = await model.chat(chat.messages, { maxTokens: chat.trusted_tokens, temperature: 0 })
    assert.equal(reply.text, chat.trusted_completion)
    assert.equal(reply.finishReason, 'length')
    const pieces = []
    for await (const piece of model.stream('Count: one, two,', { maxTokens: 6, temperature: 0 })) pieces.push(piece)
    assert.ok(pieces.length > 1 && pieces.join('').length > 0)
    await assert.rejects(model.tokenize('hello'), uml.UnsupportedError)
  } finally {
    await model.close()
  }
})

test('load options and the api key are passed', async () => {
  const model = await uml.Loader.remote({ url, model: 'smollm2', apiKey: 'unused' }, { maxParallel: 2 })
  try {
    assert.equal(model.info.plan.maxParallel, 2)
    assert.ok((await model.generate('Hi', { maxTokens: 2 })).text.length > 0)
  } finally {
    await model.close()
  }
})

test('errors: not served, unreachable, bad arguments', async () => {
  await assert.rejects(uml.Loader.remote({ url, model: 'no-such-model' }), (e) => {
    assert.ok(e instanceof uml.ModelNotFoundError)
    assert.equal(e.code, 'NOT_FOUND')
    assert.match(e.message, /no-such-model/)
    return true
  })
  await assert.rejects(uml.Loader.remote({ url: 'http://127.0.0.1:1/v1', model: 'smollm2' }), (e) => {
    assert.ok(e instanceof uml.BackendError)
    assert.match(e.message, /127\.0\.0\.1:1/)
    return true
  })
  await assert.rejects(uml.Loader.remote({ url: 'ftp://127.0.0.1/v1', model: 'smollm2' }), uml.InvalidArgumentError)
  await assert.rejects(uml.Loader.remote({ url, model: 'smollm2', apikey: 'k' }), /apikey/)
  await assert.rejects(uml.Loader.remote({ url }), (e) => e instanceof uml.InvalidArgumentError && /model/.test(e.message))
  await assert.rejects(uml.Loader.remote({ url, model: 'smollm2' }, { nCtxx: 1 }), /nCtxx/)
})

test('the endpoint is asked off the event loop', async () => {
  // An endpoint served by this very thread: the load can only succeed while the event loop
  // runs.
  const fake = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ object: 'list', data: [{ id: 'fake', object: 'model' }] }))
  })
  await new Promise((resolve) => fake.listen(0, '127.0.0.1', resolve))
  try {
    const model = await uml.Loader.remote({ url: `http://127.0.0.1:${fake.address().port}/v1`, model: 'fake' })
    assert.equal(model.info.backend, 'remote')
    await model.close()
  } finally {
    fake.close()
  }
})

test('a manager entry registered as remote', async () => {
  const manager = new uml.Manager()
  try {
    await manager.registerRemote('far', { url, model: 'smollm2' }, { maxParallel: 2 })
    await assert.rejects(manager.registerRemote('far', { url, model: 'smollm2' }), /already registered/)
    await assert.rejects(manager.registerRemote('bad', { url: 'localhost:8080', model: 'x' }), uml.InvalidArgumentError)
    await assert.rejects(manager.registerRemote('bad', { url, model: 'x', key: 'k' }), /key/)
    await manager.registerRemote('missing', { url, model: 'no-such-model' })
    const model = await manager.get('far')
    try {
      assert.equal(model.info.backend, 'remote')
      assert.ok((await model.generate('Hi', { maxTokens: 4, temperature: 0 })).text.length > 0)
      const entry = manager.list().find((e) => e.id === 'far')
      assert.equal(entry.state, 'in_use')
      assert.equal(entry.memoryBytes, 0)
    } finally {
      await model.close()
    }
    await assert.rejects(manager.get('missing'), uml.ModelNotFoundError)
  } finally {
    await manager.close()
  }
})

test('a broken local file is answered by its remote fallback', async () => {
  const broken = path.join(dir, 'broken.gguf')
  fs.writeFileSync(broken, 'GGUF but not really a model')
  const manager = new uml.Manager()
  try {
    await manager.register('local', broken)
    await assert.rejects(manager.get('local'), uml.UmlError)
    await assert.rejects(manager.setFallback('nobody', { url, model: 'smollm2' }), uml.ModelNotFoundError)
    await manager.setFallback('local', { url, model: 'smollm2' })
    const model = await manager.get('local')
    try {
      assert.equal(model.info.backend, 'remote')
      assert.equal(model.info.skippedBackends[0].stage, 'load')
      const done = await model.chat([{ role: 'user', content: 'Hi' }], { maxTokens: 4, temperature: 0 })
      assert.ok(done.text.length > 0)
    } finally {
      await model.close()
    }
  } finally {
    await manager.close()
  }
})
