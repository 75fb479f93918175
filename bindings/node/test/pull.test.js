// Manager.pull against tests/hub/fake_hub.py (a local server in the Hugging Face Hub's URL
// layout; nothing reaches the internet): the real SmolLM2 GGUF picked by tag with a token,
// through a dropped connection, reported by onProgress, registered and generating; cancelled by
// onProgress and by an AbortSignal, then resumed; errors naming their fix.
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const readline = require('node:readline')
const uml = require('..')
const { modelPath, SMOLLM2 } = require('./helpers')

const REPO = path.resolve(__dirname, '..', '..', '..')
const ID = path.basename(SMOLLM2, '.gguf')

/** The fake hub serving `root` with `args`; resolves with its URL and a stop function. */
async function fakeHub(root, ...args) {
  const proc = spawn('python3', [path.join(REPO, 'tests', 'hub', 'fake_hub.py'), root, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const lines = readline.createInterface({ input: proc.stdout })
  const url = await new Promise((resolve, reject) => {
    lines.once('line', resolve)
    proc.once('exit', (code) => reject(new Error(`fake_hub.py exited with ${code}`)))
  })
  assert.match(url, /^http:\/\//)
  return { url, stop: () => proc.kill() }
}

function sha256(file) {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex')
}

let dir
let hub
test.before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uml-pull-'))
  const repo = path.join(dir, 'hub', 'test', 'SmolLM2-GGUF')
  fs.mkdirSync(repo, { recursive: true })
  fs.symlinkSync(fs.realpathSync(modelPath()), path.join(repo, SMOLLM2))
  fs.writeFileSync(path.join(repo, 'README.md'), '# SmolLM2\n')
  hub = await fakeHub(path.join(dir, 'hub'), '--token', 'hf_secret', '--drop-after', '3000000', '--log', path.join(dir, 'log'))
})
test.after(() => {
  hub.stop()
  fs.rmSync(dir, { recursive: true, force: true })
})

function freshFolder(name) {
  const folder = path.join(dir, name)
  fs.mkdirSync(folder)
  return folder
}

test('pull fetches the tagged GGUF through a dropped connection, registers it and it generates', async () => {
  const folder = freshFolder('models')
  const manager = new uml.Manager({ folders: [folder] })
  try {
    const events = []
    const pulled = await manager.pull('test/SmolLM2-GGUF:Q4_1', {
      endpoint: hub.url,
      token: 'hf_secret',
      nCtx: 512,
      onProgress: (file, bytes, total) => {
        events.push([file, bytes, total])
      },
    })
    const file = path.join(folder, SMOLLM2)
    const size = fs.statSync(file).size
    assert.equal(pulled.id, ID)
    assert.equal(pulled.path, file)
    assert.equal(pulled.downloadedBytes, size)
    assert.equal(pulled.reusedBytes, 0)
    assert.equal(sha256(file), sha256(modelPath()))
    assert.deepEqual(events.at(-1), [SMOLLM2, size, size])
    assert.ok(events.every((e, i) => i === 0 || events[i - 1][1] <= e[1]))
    assert.match(fs.readFileSync(path.join(dir, 'log'), 'utf8'), /range=bytes=3000000-/)
    assert.deepEqual(manager.list().map((m) => m.id), [ID])
    const model = await manager.get(ID)
    assert.ok((await model.generate('The capital of France is', { maxTokens: 4, temperature: 0 })).text.length > 0)
    await model.close()
    const again = await manager.pull('test/SmolLM2-GGUF:Q4_1', { endpoint: hub.url, token: 'hf_secret' })
    assert.deepEqual([again.id, again.downloadedBytes], [ID, 0])
  } finally {
    await manager.close()
  }
})

test('a pull cancelled by onProgress or an AbortSignal resumes from its .part', async () => {
  const folder = freshFolder('cancelled')
  const manager = new uml.Manager({ folders: [folder] })
  try {
    const options = { endpoint: hub.url, token: 'hf_secret' }
    await assert.rejects(
      manager.pull('test/SmolLM2-GGUF:Q4_1', { ...options, onProgress: (_f, bytes) => bytes < 8 << 20 }),
      uml.AbortError,
    )
    const part = path.join(folder, SMOLLM2 + '.part')
    assert.ok(fs.existsSync(part))
    assert.deepEqual(manager.list(), [])
    const controller = new AbortController()
    await assert.rejects(
      manager.pull('test/SmolLM2-GGUF:Q4_1', {
        ...options,
        signal: controller.signal,
        onProgress: (_f, bytes) => {
          if (bytes >= 16 << 20) controller.abort()
        },
      }),
      { name: 'AbortError' },
    )
    await assert.rejects(
      manager.pull('test/SmolLM2-GGUF:Q4_1', {
        ...options,
        onProgress: () => {
          throw new RangeError('from onProgress')
        },
      }),
      RangeError,
    )
    const kept = fs.statSync(part).size
    const pulled = await manager.pull('test/SmolLM2-GGUF:Q4_1', options)
    assert.equal(pulled.downloadedBytes, fs.statSync(path.join(folder, SMOLLM2)).size - kept)
    assert.equal(sha256(path.join(folder, SMOLLM2)), sha256(modelPath()))
  } finally {
    await manager.close()
  }
})

test('pull errors name the fix', async () => {
  const manager = new uml.Manager({ folders: [freshFolder('errors')] })
  try {
    await assert.rejects(manager.pull('test/SmolLM2-GGUF:Q4_1', { endpoint: hub.url, token: 'hf_wrong' }), (e) => {
      assert.ok(e instanceof uml.InvalidArgumentError)
      assert.match(e.message, /HF_TOKEN/)
      return true
    })
    await assert.rejects(manager.pull('test/Nope', { endpoint: hub.url, token: 'hf_secret' }), uml.ModelNotFoundError)
    await assert.rejects(manager.pull('nope', { endpoint: hub.url }), /owner\/name/)
    await assert.rejects(manager.pull('test/SmolLM2-GGUF:Q4_1', { endpoint: 'http://127.0.0.1:9' }), uml.IoError)
    await assert.rejects(manager.pull('test/SmolLM2-GGUF:Q4_1', { endpoint: hub.url, revison: 'v1' }), /revison/)
  } finally {
    await manager.close()
  }
})
