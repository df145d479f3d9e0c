// The official Open Payments client (@interledger/open-payments createAuthenticatedClient,
// validateResponses on) driven from pytest over stdin/stdout, one JSON object per line.
//
// argv[2]: JSON {"walletAddressUrl", "privateKeyPem", "keyId"}
// stdin:   {"id": 1, "call": "grant.request", "args": [{...}, {...}]}
// stdout:  {"id": 1, "ok": true, "value": <result>}
//        | {"id": 1, "ok": false, "error": {"message", "status", "code", "description",
//                                          "validationErrors"}}
// The first line printed is {"ready": true} once the client exists.
import { createInterface } from 'node:readline'
import { createPrivateKey } from 'node:crypto'
import { createAuthenticatedClient } from '@interledger/open-payments'

const config = JSON.parse(process.argv[2] ?? '{}')
for (const name of ['walletAddressUrl', 'privateKeyPem', 'keyId']) {
  if (typeof config[name] !== 'string') {
    process.stderr.write(`client.mjs: config needs a string "${name}"\n`)
    process.exit(2)
  }
}

const client = await createAuthenticatedClient({
  walletAddressUrl: config.walletAddressUrl,
  privateKey: createPrivateKey(config.privateKeyPem),
  keyId: config.keyId,
  validateResponses: true
})

function lookup(path) {
  // Only the client's own route groups: "grant.request", "token.rotate", ...
  const [group, method, ...rest] = path.split('.')
  const target = client[group]
  if (rest.length || typeof target?.[method] !== 'function') {
    throw new Error(`no client call ${path}`)
  }
  return target[method].bind(target)
}

function describe(error) {
  return {
    message: error?.message ?? String(error),
    status: error?.status ?? null,
    code: error?.code ?? null,
    description: error?.description ?? null,
    validationErrors: error?.validationErrors ?? null
  }
}

const write = (object) => process.stdout.write(JSON.stringify(object) + '\n')
write({ ready: true })

// One call at a time, in order: the tests await each answer before the next line.
const lines = createInterface({ input: process.stdin })
for await (const line of lines) {
  if (!line.trim()) continue
  const { id, call, args } = JSON.parse(line)
  try {
    const value = await lookup(call)(...(args ?? []))
    write({ id, ok: true, value: value ?? null })
  } catch (error) {
    write({ id, ok: false, error: describe(error) })
  }
}
