import type { RouteOptions } from 'fastify';

type Schema = Record<string, unknown>;

// The OpenAPI annotations route schemas carry (what @fastify/swagger would add to the type).
declare module 'fastify' {
  interface FastifySchema {
    tags?: readonly string[];
    summary?: string;
    description?: string;
    /** Not part of the API (the web console's files): left out of the document. */
    hide?: boolean;
  }
}

/** The OpenAPI document's route list, collected from fastify's onRoute hook. */
export interface ApiRoute {
  method: string;
  url: string;
  schema: Schema;
}

export function collectRoute(route: RouteOptions, into: ApiRoute[]): void {
  const methods = Array.isArray(route.method) ? route.method : [route.method];
  for (const method of methods) {
    if (method === 'HEAD' || route.url.endsWith('/openapi.json') || route.schema?.hide) continue;
    into.push({ method: method.toLowerCase(), url: route.url, schema: (route.schema ?? {}) as Schema });
  }
}

/** `draft 2020-style` `type: [x, 'null']` is what fastify's ajv reads; OpenAPI 3.1 accepts it as is. */
function parameters(where: 'path' | 'query', schema: Schema | undefined): Schema[] {
  const props = (schema?.['properties'] ?? {}) as Record<string, Schema>;
  const required = new Set((schema?.['required'] ?? []) as string[]);
  return Object.entries(props).map(([name, s]) => ({
    name, in: where, required: where === 'path' || required.has(name), schema: s,
    ...(typeof s['description'] === 'string' ? { description: s['description'] } : {}),
  }));
}

const MUTATING = new Set(['put', 'post', 'delete', 'patch']);
const METHOD_ORDER = ['get', 'put', 'post', 'delete', 'patch'];

/** An OpenAPI 3.1 document of the API, built from the route schemas fastify validates with. */
export function openApiDocument(routes: readonly ApiRoute[], version: string): Schema {
  const paths: Record<string, Record<string, Schema>> = {};
  for (const r of [...routes].sort((a, b) => a.url.localeCompare(b.url) || METHOD_ORDER.indexOf(a.method) - METHOD_ORDER.indexOf(b.method))) {
    const path = r.url.replace(/:([A-Za-z_]+)/g, '{$1}');
    const s = r.schema;
    const responses: Record<string, Schema> = {};
    for (const [code, body] of Object.entries((s['response'] ?? {}) as Record<string, Schema>)) {
      const description = typeof body['description'] === 'string' ? body['description'] : code.startsWith('2') ? 'OK' : 'Error';
      responses[code] = { description, content: { 'application/json': { schema: body } } };
    }
    if (Object.keys(responses).length === 0 || !Object.keys(responses).some((c) => c.startsWith('2'))) responses['200'] = { description: 'OK' };
    (paths[path] ??= {})[r.method] = {
      ...(s['summary'] ? { summary: s['summary'] } : {}),
      ...(s['description'] ? { description: s['description'] } : {}),
      ...(s['tags'] ? { tags: s['tags'] } : {}),
      parameters: [...parameters('path', s['params'] as Schema | undefined), ...parameters('query', s['querystring'] as Schema | undefined)],
      ...(s['body'] ? { requestBody: { required: true, content: { 'application/json': { schema: s['body'] } } } } : {}),
      ...(MUTATING.has(r.method) ? { security: [{ bearer: [] }] } : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'tiproxy admin API', version,
      description: 'Served on api.addr by the admin-api plugin. Mutating requests (PUT, POST, DELETE) need `Authorization: Bearer <api.token>` when a token is configured, and are refused without one when the API listens beyond loopback.',
    },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    paths,
  };
}
