// LoRA adapters from Node on the real SmolLM2 (random adapters written by core's lora_adapter
// example, as core's tests write them): the `lora` load option, on by default at its scale,
// chosen per call with `lora: [...]` (`[]` and scale 0 are the base model, token for token), in
// streams too, adapters loaded together running together, and the errors (unknown name, two on
// at once at other scales, a file that is no adapter).
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const uml = require('..')
const { modelPath } = require('./helpers')

const REPO = path.resolve(__dirname, '..', '..', '..')
const PROMPT = 'Once upon a time, there was a'
const GREEDY = { maxTokens: 24, temperature: 0 }

let dir
let a
let b
test.before(() => {
  const tool = path.join(REPO, 'target', 'release', 'examples', 'lora_adapter')
  if (!fs.existsSync(tool)) {
    execFileSync('cargo', ['build', '--release', '-q', '-p', 'uml-core', '--example', 'lora_adapter'], { cwd: REPO, stdio: 'inherit' })
  }
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uml-lora-'))
  a = path.join(dir, 'a.gguf')
  b = path.join(dir, 'b.gguf')
  // Strong random adapters: each changes PROMPT's greedy text.
  execFileSync(tool, [modelPath(), a, '3', '8', '0.2'])
  execFileSync(tool, [modelPath(), b, '4', '8', '0.2'])
})
test.after(() => fs.rmSync(dir, { recursive: true, force: true }))

/** A fresh model's first greedy generation (a later one may reuse cached prompt tokens,
 * evaluated in other batches, which round differently in the last bits). */
async function firstText(lora, params = {}) {
  const model = await uml.Loader.load(modelPath(), { nCtx: 256, lora })
  try {
    return (await model.generate(PROMPT, { ...GREEDY, ...params })).text
  } finally {
    await model.close()
  }
}

test('adapters load, apply by default and are chosen per call', async () => {
  const loaded = [{ path: a }, { path: b, name: 'other', scale: 0 }]
  const base = await firstText([])
  const withA = await firstText(loaded)
  assert.notEqual(withA, base)
  assert.equal(await firstText(loaded, { lora: [{ name: 'a', scale: 1 }] }), withA)
  assert.equal(await firstText(loaded, { lora: [] }), base)
  assert.equal(await firstText(loaded, { lora: [{ name: 'a', scale: 0 }] }), base)
  const withB = await firstText(loaded, { lora: [{ name: 'other' }] })
  assert.ok(![base, withA].includes(withB))

  const model = await uml.Loader.load(modelPath(), { nCtx: 256, lora: loaded })
  try {
    let streamed = ''
    for await (const piece of model.stream(PROMPT, { ...GREEDY, lora: [{ name: 'other' }] })) streamed += piece
    // The fresh model's first generation, as withB was: a later one reuses cached prompt tokens.
    assert.equal(streamed, withB)
  } finally {
    await model.close()
  }
})

test('adapters loaded together run together', async () => {
  const both = [{ path: a }, { path: b, scale: 0.5 }]
  const together = await firstText(both)
  assert.ok(![await firstText([{ path: a }]), await firstText([{ path: b, scale: 0.5 }])].includes(together))
  assert.equal(await firstText(both, { lora: [{ name: 'b', scale: 0.5 }, { name: 'a', scale: 1 }] }), together)
  const model = await uml.Loader.load(modelPath(), { nCtx: 256, lora: both })
  try {
    await assert.rejects(model.generate('Hi', { lora: [{ name: 'a' }, { name: 'b' }] }), /loaded with/)
  } finally {
    await model.close()
  }
})

test('LoRA errors name the fix', async () => {
  const model = await uml.Loader.load(modelPath(), { nCtx: 256, lora: [{ path: a }, { path: b, scale: 0 }] })
  try {
    await assert.rejects(model.generate('Hi', { lora: [{ name: 'c' }] }), (e) => {
      assert.ok(e instanceof uml.InvalidArgumentError)
      assert.match(e.message, /loaded: a, b/)
      return true
    })
    await assert.rejects(model.generate('Hi', { lora: [{ name: 'a' }, { name: 'b' }] }), uml.UnsupportedError)
  } finally {
    await model.close()
  }
  await assert.rejects(uml.Loader.load(modelPath(), { lora: [{ path: modelPath() }] }), /not an adapter file/)
  await assert.rejects(uml.Loader.load(modelPath(), { lora: [{ path: '/nonexistent/a.gguf' }] }), uml.ModelNotFoundError)
})

test('the estimate counts the adapters', async () => {
  // No GPU layers: adapters of offloaded blocks would count on the device.
  const cpu = { nCtx: 256, gpuLayers: 0 }
  const alone = await uml.estimate(modelPath(), cpu)
  const one = await uml.estimate(modelPath(), { ...cpu, lora: [{ path: a }] })
  const both = await uml.estimate(modelPath(), { ...cpu, lora: [{ path: a }, { path: b }] })
  assert.equal(alone.adaptersBytes, 0)
  assert.ok(one.adaptersBytes > 0)
  assert.equal(one.hostBytes, alone.hostBytes + one.adaptersBytes)
  // Both on: their tensors and the merged copy (f32, as the test adapters are).
  assert.equal(both.adaptersBytes, 4 * one.adaptersBytes)
  await assert.rejects(uml.estimate(modelPath(), { lora: [{ path: '/nonexistent/a.gguf' }] }), uml.ModelNotFoundError)
})
