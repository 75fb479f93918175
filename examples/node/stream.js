// Stream text as it is generated; Ctrl-C stops it cleanly: node examples/node/stream.js [MODEL]
'use strict'

const { Loader } = require('uml')
const { modelPath } = require('./_common')

async function main() {
  let shown = ''
  const model = await Loader.load(modelPath(), {
    nCtx: 2048,
    onProgress: (stage, fraction) => {
      // llama.cpp reports every tensor; redraw only on 10% steps.
      const line = `loading: ${stage} ${String(Math.floor(fraction * 10) * 10).padStart(3)}%`
      if (line !== shown) process.stderr.write('\r' + (shown = line))
    },
  })
  process.stderr.write('\n')
  const controller = new AbortController()
  process.once('SIGINT', () => controller.abort())
  try {
    const stream = model.stream('Once upon a time', { maxTokens: 200, temperature: 0.7, seed: 1, signal: controller.signal })
    for await (const piece of stream) process.stdout.write(piece)
    const done = stream.completion
    console.log(`\n[${done.finishReason}, ${done.usage.generationTokensPerSecond.toFixed(1)} t/s]`)
  } catch (e) {
    if (e.name !== 'AbortError') throw e
    console.log('\n[stopped]')
  } finally {
    await model.close()
  }
}

main().catch((e) => {
  console.error(`${e.name} (${e.code}): ${e.message}`)
  process.exitCode = 1
})
