// Shared pieces of the outbound tests: a forwarding node with the given destinations, storescp
// receivers (verbose, so their log shows associations), a study sent by a modality, the queue.
import path from 'node:path';
import { expect } from 'vitest';
import { startNode, tempDir, type NodeHandle } from './node.js';
import { startStorescp, storescu, type StorescpHandle } from './dcmtk.js';

/** Each start registers its stop in `cleanup` (run in reverse order by the test file's afterAll). */
export function outboundFixtures(cleanup: (() => Promise<unknown>)[]) {
  return {
    /** A node in routing mode (forward: true, no segmentation) with extra `node:` YAML lines. */
    async node(yaml: string, destinations: string[]): Promise<NodeHandle> {
      const n = await startNode({
        args: ['--stable-seconds', '0.5', ...destinations.flatMap((d) => ['--destination', d])],
        configYaml: `segmentation:\n  engine: none\nnode:\n  forward: true\n${yaml}`,
      });
      cleanup.push(() => n.stop());
      return n;
    },
    async storescp(port: number, aet: string, extraArgs: string[] = []): Promise<StorescpHandle> {
      const s = await startStorescp({ port, aet, outDir: path.join(tempDir(), 'recv'), extraArgs: ['-v', ...extraArgs] });
      cleanup.push(() => s.stop());
      return s;
    },
  };
}

export const outboundItems = async (n: NodeHandle, query = ''): Promise<any[]> => (await n.api(`/api/outbound${query}`)).body as any[];

export async function sendStudy(n: NodeHandle, dir: string): Promise<void> {
  const r = await storescu({ port: n.dicomPort, calledAet: n.aet, callingAet: 'MODALITY', files: dir, timeoutMs: 60_000 });
  expect(r.code, r.stderr).toBe(0);
}
