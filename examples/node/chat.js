// A chat turn with the model's own template, streamed: node examples/node/chat.js [MODEL]
'use strict'

const { Loader } = require('uml')
const { modelPath } = require('./_common')

async function main() {
  const model = await Loader.load(modelPath(), { nCtx: 2048 })
  try {
    const messages = [
      { role: 'system', content: 'You are a concise assistant.' },
      { role: 'user', content: 'Name three uses of a paperclip.' },
    ]
    for await (const piece of model.chatStream(messages, { maxTokens: 96, temperature: 0 })) {
      process.stdout.write(piece)
    }
    process.stdout.write('\n')
  } finally {
    await model.close()
  }
}

main().catch((e) => {
  console.error(`${e.name} (${e.code}): ${e.message}`)
  process.exitCode = 1
})
