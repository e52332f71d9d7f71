#!/usr/bin/env node
/**
 * `npm run docs:config`: rewrites the configuration reference in README.md from the schema.
 * `--check` only compares (exit 1 when the README is out of date), for CI.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { renderConfigReference, spliceReference, findReference } from './reference.js';
import { writeFileAtomic } from '../store/durable-fs.js';

async function main(args: string[]): Promise<number> {
  const check = args.includes('--check');
  const file = path.resolve(args.find((a) => !a.startsWith('--')) ?? 'README.md');
  const text = readFileSync(file, 'utf8');
  const block = renderConfigReference();
  if (findReference(text, file).current === block) {
    process.stdout.write(`${file}: configuration reference is up to date\n`);
    return 0;
  }
  if (check) {
    process.stderr.write(`${file}: configuration reference is out of date: run \`npm run docs:config\`\n`);
    return 1;
  }
  await writeFileAtomic(file, spliceReference(text, block, file));
  process.stdout.write(`${file}: configuration reference rewritten\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`docs:config: ${(e as Error).message}\n`);
    process.exit(2);
  },
);
