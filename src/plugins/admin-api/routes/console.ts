import { readConsoleAssets } from '../console-assets.js';
import type { RouteDeps } from '../admin-state.js';

/**
 * The page may load only its own files and call only this API: nothing is fetched from elsewhere, and no
 * other site may frame it (the drain buttons act with the operator's token).
 */
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

/** GET / (the web console) and its script and style sheet; left out of the OpenAPI document. */
export function consoleRoutes({ app, ctx }: RouteDeps): void {
  // Read once per generation: a few kilobytes, and a rebuilt dist/ is picked up by the next reload.
  const { files, missing } = readConsoleAssets();
  if (missing) ctx.logger.warn({ reason: missing }, 'web console unavailable (the API itself works)');
  for (const { asset, body } of files.values()) {
    app.get(asset.url, { schema: { hide: true } }, async (_req, reply) =>
      reply.headers(SECURITY_HEADERS).header('cache-control', 'no-cache').type(asset.contentType).send(body));
  }
  if (missing) app.get('/', { schema: { hide: true } }, async (_req, reply) => reply.code(503).send({ error: `web console unavailable: ${missing}` }));
}
