// The model manager on the real SmolLM2 and MiniLM models, in a folder of their own under a
// budget that holds either but not both: scan and register, get -> a Model that generates, the
// states list() reports, eviction of the idle model, a model in use never evicted, aliases,
// unload / remove bytes, hot-swap, paths outside the folder refused, the event loop left free,
// and closing (the manager, and a model handle from it).
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const uml = require('..')
const { modelPath, withTicker, SMOLLM2, MINILM } = require('./helpers')

const SMOL = path.basename(SMOLLM2, '.gguf')
const MINI = path.basename(MINILM, '.gguf')
// The same options for every load, so the estimates below are what the manager counts.
const LOAD = { nCtx: 256, maxParallel: 1 }
const GREEDY = { maxTokens: 4, temperature: 0 }

let dir
let folder
let budget
test.before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uml-manager-'))
  folder = path.join(dir, 'models')
  fs.mkdirSync(folder)
  for (const name of [SMOLLM2, MINILM]) {
    const to = path.join(folder, name)
    try {
      fs.linkSync(modelPath(name), to) // same file system: no copy
    } catch {
      fs.copyFileSync(modelPath(name), to)
    }
  }
  // The manager loads the encoder for embeddings: estimate it so.
  const smol = await uml.estimate(path.join(folder, SMOLLM2), LOAD)
  const mini = await uml.estimate(path.join(folder, MINILM), { ...LOAD, embeddings: true })
  budget = Math.max(smol.hostBytes, mini.hostBytes)
})
test.after(() => {
  fs.rmSync(dir, { recursive: true, force: true })
})

/** Run `work` with a new manager over the folder, closed after it. */
async function withManager(options, work) {
  const manager = new uml.Manager({ memoryBudgetBytes: budget, folders: [folder], ...options })
  try {
    await work(manager)
  } finally {
    await manager.close()
  }
}

function stateOf(manager, id) {
  return manager.list().find((m) => m.id === id).state
}

test('get gives a Model that generates; closing it lets go of that handle only', async () => {
  await withManager({}, async (manager) => {
    assert.ok(manager instanceof uml.Manager)
    assert.deepEqual(await manager.scan(LOAD), [SMOL, MINI])
    assert.deepEqual(await manager.scan(), [])
    assert.deepEqual(
      manager.list().map((m) => m.state),
      ['unloaded', 'unloaded'],
    )
    assert.equal(manager.budgetBytes, budget)
    assert.equal(manager.usedBytes, 0)
    assert.equal(manager.keepAliveMs, null)

    const model = await manager.get(SMOL)
    assert.ok(model instanceof uml.Model)
    assert.ok(model.path.endsWith(SMOLLM2))
    const out = await model.generate('1, 2, 3, 4,', GREEDY)
    assert.ok(out.usage.completionTokens > 0)
    assert.equal(stateOf(manager, SMOL), 'in_use')
    await model.close()
    assert.ok(model.closed)
    await assert.rejects(model.generate('Hi'), (e) => e instanceof uml.ModelClosedError && /manager\.get/.test(e.message))

    const entry = manager.list().find((m) => m.id === SMOL)
    assert.equal(entry.state, 'idle')
    assert.equal(entry.backend, 'llama.cpp')
    assert.ok(entry.memoryBytes > 0 && typeof entry.idleMs === 'number')
    assert.deepEqual(entry.activity, { running: 0, queued: 0 })
    assert.deepEqual(entry.aliases, [])
    assert.ok(manager.usedBytes > 0 && manager.usedBytes <= manager.budgetBytes)

    // Two handles to one model are independent.
    const [first, second] = [await manager.get(SMOL), await manager.get(SMOL)]
    await first.close()
    assert.ok((await second.generate('Hi', GREEDY)).usage.completionTokens > 0)
    await second.close()
  })
})

test('a load over budget unloads the idle model; a model in use is never evicted', async () => {
  await withManager({}, async (manager) => {
    await manager.scan(LOAD)
    manager.alias('embedder', MINI)
    await (await manager.get(SMOL)).close()
    const mini = await manager.get('embedder')
    assert.equal(stateOf(manager, SMOL), 'unloaded')
    assert.equal(stateOf(manager, MINI), 'in_use')
    assert.deepEqual(manager.list().find((m) => m.id === MINI).aliases, ['embedder'])
    const [vector] = await mini.embed(['a cat'])
    assert.equal(vector.length, 384)
    // Held: SmolLM2 does not fit beside it, and it stays.
    await assert.rejects(manager.get(SMOL), (e) => e instanceof uml.OutOfMemoryError && /budget/.test(e.message))
    assert.equal(stateOf(manager, MINI), 'in_use')
    await mini.close()
    await (await manager.get(SMOL)).close()
    assert.equal(stateOf(manager, MINI), 'unloaded')
    await assert.rejects(
      manager.get('nope'),
      (e) => e instanceof uml.ModelNotFoundError && e.code === 'NOT_FOUND' && e.message.includes(SMOL),
    )
  })
})

test('unload and remove return the bytes; swap keeps models handed out working', async () => {
  await withManager({ memoryBudgetBytes: null, keepAliveMs: 60_000 }, async (manager) => {
    assert.equal(manager.keepAliveMs, 60_000)
    await manager.register('chat', path.join(folder, SMOLLM2), LOAD)
    await (await manager.get('chat')).close()
    assert.ok(manager.unload('chat') > 0)
    assert.equal(stateOf(manager, 'chat'), 'unloaded')
    assert.equal(manager.unload('chat'), 0)

    const old = await manager.get('chat')
    manager.alias('default', 'chat')
    await manager.swap('default', path.join(folder, MINILM), { ...LOAD, embeddings: true })
    const swapped = await manager.get('chat')
    assert.ok(swapped.path.endsWith(MINILM) && old.path.endsWith(SMOLLM2))
    assert.ok((await old.generate('Hi', GREEDY)).usage.completionTokens > 0)
    assert.equal((await swapped.embed(['a dog']))[0].length, 384)
    await old.close()
    fs.writeFileSync(path.join(folder, 'broken.gguf'), 'GGUF but not really')
    try {
      await assert.rejects(manager.swap('chat', path.join(folder, 'broken.gguf')), uml.UmlError)
    } finally {
      fs.rmSync(path.join(folder, 'broken.gguf'))
    }
    const kept = await manager.get('chat') // a failed swap keeps the model that runs
    assert.ok(kept.path.endsWith(MINILM))

    assert.ok(manager.remove('default') > 0)
    assert.deepEqual(manager.list(), [])
    await assert.rejects(manager.get('chat'), uml.ModelNotFoundError)
    assert.throws(() => manager.unload('chat'), uml.ModelNotFoundError)
    // A model handed out outlives its removal, and its manager.
    await manager.close()
    assert.equal((await kept.embed(['still here']))[0].length, 384)
    await kept.close()
  })
})

test('paths outside the folders, bad ids and bad options are refused', async () => {
  // The model outside the folder, reached directly, through `..` and through a symlink.
  const outside = path.join(dir, 'outside.gguf')
  fs.symlinkSync(modelPath(SMOLLM2), outside)
  const link = path.join(folder, 'link.gguf')
  fs.symlinkSync(modelPath(SMOLLM2), link)
  try {
    await withManager({}, async (manager) => {
      for (const p of [modelPath(SMOLLM2), path.join(folder, '..', 'outside.gguf'), link]) {
        await assert.rejects(
          manager.register('x', p),
          (e) => e instanceof uml.InvalidArgumentError && /outside the model folders/.test(e.message),
        )
      }
      // scan passes over what it cannot register.
      assert.deepEqual(await manager.scan(LOAD), [SMOL, MINI])
      await assert.rejects(manager.register('x', path.join(folder, 'missing.gguf')), uml.ModelNotFoundError)
      await assert.rejects(manager.register(SMOL, path.join(folder, MINILM)), /already registered/)
      await assert.rejects(manager.register('two words', path.join(folder, MINILM)), uml.InvalidArgumentError)
      await assert.rejects(
        manager.register('x', path.join(folder, MINILM), { nGpuLayers: 1 }),
        (e) => e instanceof uml.InvalidArgumentError && /nGpuLayers/.test(e.message),
      )
      await assert.rejects(manager.swap(SMOL, outside), /outside the model folders/)
      await assert.rejects(manager.swap('nope', path.join(folder, MINILM)), uml.ModelNotFoundError)
      assert.throws(() => manager.alias('y', 'nope'), uml.ModelNotFoundError)
    })
  } finally {
    fs.rmSync(outside)
    fs.rmSync(link)
  }
  assert.throws(
    () => new uml.Manager({ keepAlive: 5 }),
    (e) => e instanceof uml.InvalidArgumentError && /keepAlive/.test(e.message) && /keepAliveMs/.test(e.message),
  )
  assert.throws(
    () => new uml.Manager({ memoryBudgetBytes: -1 }),
    (e) => e instanceof uml.InvalidArgumentError && /memoryBudgetBytes/.test(e.message),
  )
  assert.throws(() => new uml.Manager({ folders: ['/no/such/uml/folder'] }), uml.ModelNotFoundError)
})

test('a closed manager refuses calls; get leaves the event loop free', async () => {
  const manager = new uml.Manager({ folders: [folder] })
  assert.ok(manager.budgetBytes > 0) // 80% of the available RAM
  await manager.register('smol', path.join(folder, SMOLLM2), { nCtx: 2048 })
  const [model, gap] = await withTicker(() => manager.get('smol'))
  assert.ok(gap < 50, `the event loop stalled ${gap.toFixed(1)} ms during get`)
  await model.close()
  await manager.close()
  assert.ok(manager.closed)
  await manager.close() // idempotent
  assert.throws(() => manager.list(), (e) => e instanceof uml.InvalidArgumentError && /closed/.test(e.message))
  await assert.rejects(manager.get('smol'), uml.InvalidArgumentError)
  assert.throws(() => manager.usedBytes, uml.InvalidArgumentError)
})
