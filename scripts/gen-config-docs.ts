/**
 * Generates docs/configuration.md from schemas/proxy.schema.json, so the reference can never drift
 * from what the loader actually accepts. `npm run docs:config` writes it; check-config-docs.ts
 * verifies it is current.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The subset of JSON Schema the proxy schema uses. */
interface SchemaNode {
  $ref?: string;
  title?: string;
  description?: string;
  type?: string;
  enum?: unknown[];
  default?: unknown;
  minimum?: number;
  exclusiveMinimum?: number;
  properties?: Record<string, SchemaNode>;
  required?: string[];
  items?: SchemaNode;
  $defs?: Record<string, SchemaNode>;
  'x-reloadable'?: boolean;
  'x-expected'?: string;
}

interface DocRow {
  keyPath: string;
  type: string;
  defaultValue: string;
  description: string;
}

export const repositoryRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
export const schemaPath = join(repositoryRoot, 'schemas', 'proxy.schema.json');
export const configDocsPath = join(repositoryRoot, 'docs', 'configuration.md');

const INTRO = [
  '# Configuration reference',
  '',
  '<!-- Generated from schemas/proxy.schema.json by `npm run docs:config`; do not edit by hand. -->',
  '',
  'tiproxy reads a YAML file (`tiproxy --config conf/proxy.yaml`); every key is optional and a missing key takes the',
  'default shown below. Durations are numbers of seconds (fractions allowed). On SIGHUP the file is read again:',
  'keys marked *reloadable* apply without restart, the others need one. Command-line flags (`--addr`, `--api-addr`,',
  '`--log-level`, `--log-format`, `--plugin-dir`, `--backend`, `--pd-addrs`) override the file.',
];

/** A plugin's config schema and where it lives (for the plugins part of the reference). */
export interface PluginSchema {
  name: string;
  file: string;
  schema: SchemaNode;
}

/** Renders the whole reference page: the proxy's own keys, then each plugin's `config`. */
export function renderConfigDocs(schema: SchemaNode, plugins: readonly PluginSchema[] = []): string {
  const lines = [...INTRO];
  for (const [key, node] of Object.entries(schema.properties ?? {})) {
    const section = resolve(schema, node);
    const isObjectSection = section.type === 'object';
    lines.push('', `## \`${key}\``, '');
    // An object section is described above its table, which then lists only what is inside;
    // any other top-level key is described by its own row.
    if (isObjectSection && section.description !== undefined) lines.push(section.description, '');
    lines.push('| Key | Type | Default | Description |', '| --- | --- | --- | --- |');
    const rows = isObjectSection ? childRows(schema, key, section) : rowsFor(schema, key, section, false);
    for (const row of rows) lines.push(`| \`${row.keyPath}\` | ${cell(row.type)} | ${cell(row.defaultValue)} | ${cell(row.description)} |`);
  }
  if (plugins.length > 0) {
    lines.push('', '## Plugins', '', 'Each entry of `plugins:` has `name`, `enabled`, `required` and `config`; these are the `config` keys of',
      'the plugins that ship with tiproxy (built-in ones from `schemas/plugins/`, contrib ones from `plugins-contrib/`).');
    for (const plugin of plugins) {
      lines.push('', `### \`${plugin.name}\``, '', `Schema: \`${plugin.file}\``, '');
      if (plugin.schema.description) lines.push(plugin.schema.description, '');
      const rows = childRows(plugin.schema, 'config', plugin.schema);
      if (rows.length === 0) {
        lines.push('No settings.');
        continue;
      }
      lines.push('| Key | Type | Default | Description |', '| --- | --- | --- | --- |');
      for (const row of rows) lines.push(`| \`${row.keyPath}\` | ${cell(row.type)} | ${cell(row.defaultValue)} | ${cell(row.description)} |`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Built-in plugin schemas (schemas/plugins/<name>.schema.json), then contrib ones (plugins-contrib/<name>/schema.json). */
export function readPluginSchemas(): PluginSchema[] {
  const out: PluginSchema[] = [];
  const builtin = join(repositoryRoot, 'schemas', 'plugins');
  if (existsSync(builtin)) {
    for (const f of readdirSync(builtin).filter((n) => n.endsWith('.schema.json')).sort()) {
      out.push({ name: f.replace('.schema.json', ''), file: `schemas/plugins/${f}`, schema: JSON.parse(readFileSync(join(builtin, f), 'utf8')) as SchemaNode });
    }
  }
  const contrib = join(repositoryRoot, 'plugins-contrib');
  if (existsSync(contrib)) {
    for (const d of readdirSync(contrib).sort()) {
      const f = join(contrib, d, 'schema.json');
      if (existsSync(f)) out.push({ name: d, file: `plugins-contrib/${d}/schema.json`, schema: JSON.parse(readFileSync(f, 'utf8')) as SchemaNode });
    }
  }
  return out;
}

function rowsFor(root: SchemaNode, keyPath: string, referencing: SchemaNode, required: boolean): DocRow[] {
  const node = resolve(root, referencing);
  const rows: DocRow[] = [
    {
      keyPath,
      type: describeType(node),
      defaultValue: 'default' in node ? `\`${JSON.stringify(node.default)}\`` : required ? 'required' : '(unset)',
      description: `${node.description ?? ''}${node['x-reloadable'] === true ? ' *reloadable*' : ''}`.trim(),
    },
  ];
  if (node.type === 'object') rows.push(...childRows(root, keyPath, node));
  if (node.type === 'array' && node.items !== undefined) rows.push(...childRows(root, `${keyPath}[]`, resolve(root, node.items)));
  return rows;
}

function childRows(root: SchemaNode, keyPath: string, node: SchemaNode): DocRow[] {
  const required = new Set(node.required ?? []);
  return Object.entries(node.properties ?? {}).flatMap(([key, child]) => rowsFor(root, `${keyPath}.${key}`, child, required.has(key)));
}

/** Merges a `$ref`'d definition under the referencing node, whose own keywords (description, default) win. */
function resolve(root: SchemaNode, node: SchemaNode): SchemaNode {
  if (node.$ref === undefined) return node;
  const match = /^#\/\$defs\/(.+)$/.exec(node.$ref);
  const target = match ? root.$defs?.[match[1]!] : undefined;
  if (target === undefined) throw new Error(`unsupported $ref ${node.$ref}`);
  const { $ref: _ref, ...own } = node;
  return { ...resolve(root, target), ...own };
}

function describeType(node: SchemaNode): string {
  if (node.enum !== undefined) return node.enum.map((value) => `\`${JSON.stringify(value)}\``).join(' \\| ');
  if (node['x-expected'] !== undefined) return `string (${node['x-expected']})`;
  if (node.type === 'array' && node.items !== undefined) return `list of ${node.items.type ?? 'values'}`;
  const type = node.type ?? 'any';
  if (node.minimum !== undefined) return `${type} ≥ ${node.minimum}`;
  if (node.exclusiveMinimum !== undefined) return `${type} > ${node.exclusiveMinimum}`;
  return type;
}

/** Keeps table cells on one line and their pipes literal. */
function cell(text: string): string {
  return text.replace(/\n/g, ' ').replace(/(?<!\\)\|/g, '\\|');
}

export function readSchema(): SchemaNode {
  return JSON.parse(readFileSync(schemaPath, 'utf8')) as SchemaNode;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  writeFileSync(configDocsPath, renderConfigDocs(readSchema(), readPluginSchemas()));
  console.log(`wrote ${configDocsPath}`);
}
