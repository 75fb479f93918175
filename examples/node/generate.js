// Generate text: node examples/node/generate.js [MODEL]
'use strict'

const { Loader } = require('uml')
const { modelPath } = require('./_common')

async function main() {
  const model = await Loader.load(modelPath(), { nCtx: 2048 })
  try {
    const out = await model.generate('The three primary colors are', { maxTokens: 48, temperature: 0 })
    console.log(out.text)
    console.log(`[${out.finishReason}, ${out.usage.generationTokensPerSecond.toFixed(1)} t/s]`)
  } finally {
    await model.close()
  }
}

main().catch((e) => {
  console.error(`${e.name} (${e.code}): ${e.message}`)
  process.exitCode = 1
})
