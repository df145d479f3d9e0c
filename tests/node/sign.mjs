// Signs HTTP requests with the official Open Payments signer
// (@interledger/http-signature-utils createHeaders), for tests/node_oracle.py.
//
// stdin:  {"privateKeyPem": "<PKCS#8 PEM, Ed25519>", "keyId": "...",
//          "requests": [{"method": "POST", "url": "https://...",
//                        "headers": {"Authorization": "GNAP tok"},   (optional)
//                        "body": <any JSON value>}]}                 (optional)
// stdout: [{"headers": {...every header to send...}, "body": "<exact string>" | null}, ...]
//
// The library digests JSON.stringify(JSON.parse(body)) but measures Content-Length on the
// string it is given, so the body we hand it (and print) is JSON.stringify(value): then
// Content-Digest and Content-Length both describe exactly the printed bytes.
import { createPrivateKey } from 'node:crypto'
import signatureUtils from '@interledger/http-signature-utils'

const { createHeaders } = signatureUtils

async function readStdin() {
  const chunks = []
  for await (const chunk of process.stdin) chunks.push(chunk)
  return Buffer.concat(chunks).toString('utf8')
}

function fail(message) {
  process.stderr.write(`sign.mjs: ${message}\n`)
  process.exit(2)
}

async function signOne(request, privateKey, keyId) {
  if (typeof request?.method !== 'string' || typeof request?.url !== 'string') {
    fail('every request needs a string "method" and "url"')
  }
  const given = { ...(request.headers ?? {}) }
  const body =
    request.body === undefined || request.body === null ? undefined : JSON.stringify(request.body)
  const produced = await createHeaders({
    // createHeaders replaces request.headers (adding the content headers), so pass a copy.
    request: { method: request.method.toUpperCase(), url: request.url, headers: { ...given }, body },
    privateKey,
    keyId
  })
  // Given headers first, minus any the library produced (compared case-insensitively).
  const producedNames = new Set(Object.keys(produced).map((name) => name.toLowerCase()))
  const headers = {}
  for (const [name, value] of Object.entries(given)) {
    if (!producedNames.has(name.toLowerCase())) headers[name] = value
  }
  Object.assign(headers, produced)
  return { headers, body: body ?? null }
}

const input = JSON.parse(await readStdin())
if (typeof input.privateKeyPem !== 'string' || typeof input.keyId !== 'string') {
  fail('input needs string "privateKeyPem" and "keyId"')
}
if (!Array.isArray(input.requests)) fail('input needs a "requests" array')
const privateKey = createPrivateKey(input.privateKeyPem)
if (privateKey.asymmetricKeyType !== 'ed25519') fail('the private key is not Ed25519')

const results = []
for (const request of input.requests) {
  results.push(await signOne(request, privateKey, input.keyId))
}
process.stdout.write(JSON.stringify(results))
