import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { documentedMachines, machinesDoc } from '../../scripts/machinesDoc.js';
import { renderMermaid, statePaths, transitionLabels } from '../../scripts/mermaid.js';

describe('docs/machines.md', () => {
  it('is what the machine definitions generate (run `npm run docs:machines` after changing a machine)', async () => {
    const committed = await readFile(fileURLToPath(new URL('../../docs/machines.md', import.meta.url)), 'utf8');
    expect(committed).toBe(machinesDoc());
  });

  it.each(documentedMachines.map((d) => [d.machine.id, d.machine] as const))('draws every state and transition of %s in valid Mermaid', (_, machine) => {
    const diagram = renderMermaid(machine);
    const lines = diagram.split('\n').slice(1).map((l) => l.trim());
    const ids = new Set<string>();
    for (const line of lines) {
      const declared = /^state "([^"]+)" as (\S+)( \{)?$/.exec(line);
      if (declared) ids.add(declared[2]!);
      const edge = /^(\S+) --> (\S+)(?: : (.*))?$/.exec(line);
      if (edge?.[3]) expect(edge[3], `label of ${line}`).not.toMatch(/[:;\n]/);
    }
    // Mermaid ids: no colon, whitespace, dash or brace.
    for (const id of ids) expect(id).toMatch(/^[^:\s{-]+$/);
    // Every state is declared, every transition drawn.
    expect(ids.size).toBe(statePaths(machine).length);
    // Targetless transitions of the machine itself are drawn as one note line each.
    const edges = lines.filter((l) => / --> /.test(l) && !l.startsWith('[*]') && !l.endsWith('[*]')).length;
    const notes = lines.filter((l) => l.startsWith('in every state:')).length;
    expect(edges + notes).toBeGreaterThanOrEqual(transitionLabels(machine).length);
  });
});
