// A real OAuth 2.1 / OpenID authorization server for the tests: the npm package `oidc-provider`
// (pinned by package-lock.json next to this file), configured the way the MCP authorization
// specification expects one, on a loopback port. Started by tests/support/oauth.py; it lives here,
// next to node_modules, so that `import 'oidc-provider'` resolves.
//
// It owns: the provider's configuration (dynamic client registration, PKCE S256 required,
// resource indicators with JWT access tokens, refresh tokens, client credentials, introspection,
// revocation, the development login and consent pages), an optional file-backed store so that a
// restart keeps clients, grants and refresh tokens, and a log of requests and errors on stdout.
// It must not be used outside tests: the login page accepts any username and password.
//
// Pinned: oidc-provider 9.13.3. It prints "Unsupported runtime" on Node 20 (it asks for Node 22 LTS
// or later) but runs there: tests/upstreams/test_oidc_fixture.py passes on Node 20.20. RFC 9207's
// `iss` authorization-response parameter is always on in this version (nothing to configure).
//
//   node oidc_provider.mjs PORT        (or OIDC_PORT=PORT)
//
// Environment (all optional):
//   OIDC_PORT                  the port when not given as argv[2]
//   OIDC_JWKS_FILE             a JSON file {"keys": [private JWK, ...]}: the signing keys; the first key
//                              that fits an algorithm signs (RS256: the first RSA key), every key is
//                              published at /jwks. Unset: one fresh RSA key per start.
//   OIDC_ACCESS_TTL            access-token lifetime in seconds (default 3600), for every resource
//   OIDC_REFRESH_TTL           refresh-token lifetime in seconds (default 14 days)
//   OIDC_SCOPES                the scopes every resource server accepts (default "mcp:tools mcp:read")
//   OIDC_RESOURCES             space-separated resource URLs allowed as `resource`; unset: any absolute URL
//   OIDC_ACCESS_TOKEN_FORMAT   "jwt" (default, RFC 9068, aud = the resource) or "opaque" (introspect it)
//   OIDC_OPAQUE_RESOURCES      space-separated resource URLs whose access tokens are opaque whatever the default
//   OIDC_EXTRA_CLAIMS          a JSON object {client_id: {claim: value, ...}}: claims added to that client's
//                              JWT access tokens (e.g. a claim naming the gateway profile it may reach)
//   OIDC_CLIENTS               a JSON array of client metadata registered at start (static clients,
//                              e.g. a confidential client for client_credentials or introspection)
//   OIDC_STATE_FILE            a JSON file persisting clients, grants, sessions and tokens across restarts;
//                              unset: memory only
//   OIDC_NO_RFC8414            "1": answer 404 at /.well-known/oauth-authorization-server (RFC 8414), so that a
//                              client must fall back to OpenID discovery; unset: both serve the same metadata
//   OIDC_CIMD                  "1": enable the experimental Client ID Metadata Document support
//                              (draft-02; client ids must then be https URLs)
//   OIDC_FETCH_LOOPBACK        "1" (tests only): let the provider's outgoing fetches (the CIMD document) reach
//                              loopback and other special-use addresses. oidc-provider's fetch goes through
//                              an SSRF guard (lib/helpers/fetch_request.js: options.dispatcher) that refuses
//                              them; the `fetch` override below drops that dispatcher, so a client id like
//                              https://127.0.0.1:P/... can be fetched. Every such fetch is logged
//                              ("fetch GET <url> -> <status>"). The fetched server's certificate must still
//                              verify: give Node a test CA with NODE_EXTRA_CA_CERTS=<pem file>.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

import Provider, { errors } from 'oidc-provider';

const env = process.env;
const port = Number(process.argv[2] || env.OIDC_PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node oidc_provider.mjs PORT (or OIDC_PORT)');
  process.exit(2);
}
const host = '127.0.0.1';
const issuer = `http://${host}:${port}`;
const accessTtl = Number(env.OIDC_ACCESS_TTL || 3600);
const refreshTtl = Number(env.OIDC_REFRESH_TTL || 14 * 24 * 3600);
const resourceScope = (env.OIDC_SCOPES || 'mcp:tools mcp:read').trim();
const allowedResources = env.OIDC_RESOURCES ? new Set(env.OIDC_RESOURCES.split(/\s+/).filter(Boolean)) : null;
const accessTokenFormat = env.OIDC_ACCESS_TOKEN_FORMAT || 'jwt';
const opaqueResources = new Set((env.OIDC_OPAQUE_RESOURCES || '').split(/\s+/).filter(Boolean));
if (!['jwt', 'opaque'].includes(accessTokenFormat)) {
  console.error(`OIDC_ACCESS_TOKEN_FORMAT must be jwt or opaque, not ${accessTokenFormat}`);
  process.exit(2);
}
const log = (...parts) => console.log(new Date().toISOString(), ...parts);

// Outgoing fetches without the SSRF guard's dispatcher (OIDC_FETCH_LOOPBACK=1, tests only), logged.
async function loopbackFetch(url, options) {
  const { dispatcher: _guard, ...rest } = options;
  try {
    const response = await globalThis.fetch(url, rest);
    log('fetch', rest.method || 'GET', String(url), '->', response.status);
    return response;
  } catch (err) {
    log('fetch', rest.method || 'GET', String(url), 'failed:', err.cause?.code || err.cause?.message || err.message);
    throw err;
  }
}

// -- signing keys -------------------------------------------------------------------------------
function loadJwks() {
  if (env.OIDC_JWKS_FILE) {
    return JSON.parse(readFileSync(env.OIDC_JWKS_FILE, 'utf8'));
  }
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: `k-${randomBytes(6).toString('hex')}`, use: 'sig', alg: 'RS256' }] };
}
const jwks = loadJwks();

// -- storage: memory, or a JSON file rewritten on each change (small: a test's worth of tokens) --
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest', 'PreAuthorizedCode']);

class Store {
  constructor(path) {
    this.path = path;
    this.entries = new Map(); // key -> { value, expiresAt (ms epoch or null) }
    if (path && existsSync(path)) {
      for (const [key, entry] of Object.entries(JSON.parse(readFileSync(path, 'utf8')))) {
        this.entries.set(key, entry);
      }
    }
  }

  get(key) {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt !== null && entry.expiresAt <= Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key, value, expiresIn) {
    this.entries.set(key, { value, expiresAt: typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : null });
  }

  delete(key) {
    this.entries.delete(key);
  }

  save() {
    if (!this.path) return;
    const now = Date.now();
    const out = {};
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt === null || entry.expiresAt > now) out[key] = entry;
    }
    writeFileSync(`${this.path}.tmp`, JSON.stringify(out));
    renameSync(`${this.path}.tmp`, this.path);
  }
}

const store = new Store(env.OIDC_STATE_FILE);

class Adapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    store.set(key, payload, expiresIn);
    if (this.model === 'Session') store.set(`sessionUid:${payload.uid}`, id, expiresIn);
    if (payload.userCode) store.set(`userCode:${payload.userCode}`, id, expiresIn);
    if (GRANTABLE.has(this.model) && payload.grantId) {
      const members = new Set(store.get(`grant:${payload.grantId}`) || []);
      members.add(key);
      store.set(`grant:${payload.grantId}`, [...members], null);
    }
    store.save();
  }

  async find(id) {
    return store.get(this.key(id));
  }

  async findByUid(uid) {
    const id = store.get(`sessionUid:${uid}`);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = store.get(`userCode:${userCode}`);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const key = this.key(id);
    const entry = store.entries.get(key);
    if (entry) {
      entry.value.consumed = Math.floor(Date.now() / 1000);
      store.save();
    }
  }

  async destroy(id) {
    store.delete(this.key(id));
    store.save();
  }

  async revokeByGrantId(grantId) {
    for (const key of store.get(`grant:${grantId}`) || []) store.delete(key);
    store.delete(`grant:${grantId}`);
    store.save();
  }
}

// -- the provider ---------------------------------------------------------------------------------
const staticClients = env.OIDC_CLIENTS ? JSON.parse(env.OIDC_CLIENTS) : [];
const extraClaims = env.OIDC_EXTRA_CLAIMS ? JSON.parse(env.OIDC_EXTRA_CLAIMS) : {};

const configuration = {
  adapter: Adapter,
  clients: staticClients,
  jwks,
  cookies: { keys: [randomBytes(32).toString('hex')] },
  // A client that names no grant types may use refresh tokens: MCP clients expect them.
  clientDefaults: {
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  },
  pkce: { required: () => true }, // S256 is the only method oidc-provider offers
  responseTypes: ['code'],
  scopes: ['openid', 'offline_access'],
  async findAccount(_ctx, sub) {
    return { accountId: sub, async claims() { return { sub }; } };
  },
  // Refresh tokens for every authorization-code flow of a client allowed the refresh_token grant,
  // with or without offline_access (MCP clients rarely ask for it).
  async issueRefreshToken(_ctx, client) {
    return client.grantTypeAllowed('refresh_token');
  },
  // rotateRefreshToken: the default (public clients always rotate, confidential ones past 70 % of the TTL)
  ttl: {
    AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL || accessTtl,
    ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL || accessTtl,
    RefreshToken: () => refreshTtl,
    AuthorizationCode: 60,
    IdToken: 3600,
    Interaction: 3600,
    Session: 24 * 3600,
    Grant: 14 * 24 * 3600,
  },
  features: {
    devInteractions: { enabled: true }, // /interaction/:uid login (any username/password) and consent pages
    registration: { enabled: true, initialAccessToken: false }, // open dynamic client registration (RFC 7591)
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    userinfo: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (_ctx, _client, oneOf) => oneOf,
      useGrantedResource: () => false,
      async getResourceServerInfo(_ctx, resource) {
        if (allowedResources && !allowedResources.has(resource)) {
          throw new errors.InvalidTarget(`resource ${resource} is not served by this authorization server`);
        }
        const format = opaqueResources.has(resource) ? 'opaque' : accessTokenFormat;
        const info = { audience: resource, scope: resourceScope, accessTokenTTL: accessTtl, accessTokenFormat: format };
        if (format === 'jwt') info.jwt = { sign: { alg: 'RS256' } };
        return info;
      },
    },
    ...(env.OIDC_CIMD === '1' ? { clientIdMetadataDocument: { enabled: true, ack: 'draft-02' } } : {}),
  },
  ...(env.OIDC_FETCH_LOOPBACK === '1' ? { fetch: loopbackFetch } : {}),
  // Access tokens and refresh tokens are not tied to the browser session's end.
  expiresWithSession: () => false,
  clientBasedCORS: () => true,
  async extraTokenClaims(_ctx, token) {
    return extraClaims[token.clientId] || undefined;
  },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><html><head><title>oops</title></head><body><h1>oops! something went wrong</h1>${
      Object.entries(out).map(([k, v]) => `<pre><strong>${k}</strong>: ${String(v).replace(/[<>&"]/g, '')}</pre>`).join('')}</body></html>`;
  },
};

const provider = new Provider(issuer, configuration);

// One line per request (the path only: queries carry codes and states), and every error event.
provider.use(async (ctx, next) => {
  await next();
  log(ctx.method, ctx.path, ctx.status);
});

if (env.OIDC_NO_RFC8414 === '1') {
  // oidc-provider serves its metadata at both well-known paths; this hides the RFC 8414 one.
  provider.use(async (ctx, next) => {
    if (ctx.path === '/.well-known/oauth-authorization-server') {
      ctx.status = 404;
      ctx.body = { error: 'not_found' };
      return;
    }
    await next();
  });
}

for (const event of ['server_error', 'authorization.error', 'grant.error', 'registration_create.error',
  'introspection.error', 'revocation.error', 'end_session.error', 'userinfo.error', 'jwks.error',
  'discovery.error', 'check_session.error']) {
  provider.on(event, (_ctx, err) => log(`${event}:`, err.error || err.name, err.error_description || err.message));
}
for (const event of ['grant.success', 'registration_create.success', 'grant.revoked']) {
  provider.on(event, () => log(event));
}

const server = provider.listen(port, host, () => {
  log(`oidc-provider listening on ${issuer} (keys: ${jwks.keys.map((k) => k.kid).join(', ')}; access tokens: ${accessTokenFormat}, ${accessTtl} s)`);
});
server.on('error', (err) => {
  console.error(`cannot listen on ${issuer}: ${err.message}`);
  process.exit(1);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0)); // the store is written synchronously: nothing to flush
}
