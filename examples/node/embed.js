// Sentence embeddings and their cosine similarity: node examples/node/embed.js [MODEL]
'use strict'

const { Loader } = require('uml')
const { modelPath } = require('./_common')

const cosine = (a, b) => a.reduce((sum, x, i) => sum + x * b[i], 0) // vectors are L2-normalised

async function main() {
  const model = await Loader.load(modelPath('all-MiniLM-L6-v2.F32.gguf'), { embeddings: true })
  try {
    const texts = ['A cat sits on the mat.', 'A kitten rests on a rug.', 'Stocks fell sharply today.']
    const [cat, kitten, stocks] = await model.embed(texts)
    console.log(`${cat.length} dimensions`)
    console.log(`cat ~ kitten: ${cosine(cat, kitten).toFixed(3)}`)
    console.log(`cat ~ stocks: ${cosine(cat, stocks).toFixed(3)}`)
  } finally {
    await model.close()
  }
}

main().catch((e) => {
  console.error(`${e.name} (${e.code}): ${e.message}`)
  process.exitCode = 1
})
