import type { AnyStateMachine } from 'xstate';
import { connectionMachine, inboxMachine, messageMachine, outboxMachine, pendingItemMachine } from '../machines/index.js';
import { renderMermaid } from './mermaid.js';

/** The machines drawn in docs/machines.md, in reading order. */
export const documentedMachines: Array<{ file: string; machine: AnyStateMachine }> = [
  { file: 'machines/connection.ts', machine: connectionMachine },
  { file: 'machines/message.ts', machine: messageMachine },
  { file: 'machines/outbox.ts', machine: outboxMachine },
  { file: 'machines/inbox.ts', machine: inboxMachine },
  { file: 'machines/pendingItem.ts', machine: pendingItemMachine },
];

/** The whole of docs/machines.md. */
export function machinesDoc(): string {
  const parts = [
    '# The statecharts',
    '',
    '<!-- Generated from the machine definitions by `npm run docs:machines`. Do not edit: CI fails when this file',
    '     differs from what the definitions generate. -->',
    '',
    'Every diagram below is drawn from the definition in `machines/` (`machine.root`): nested states,',
    'initial (`[*] -->`) and final (`--> [*]`) states, guards in `[brackets]`, delayed transitions as',
    '`after <delay>`, invoked actors and their completion as `<actor> done` / `<actor> error`, actions after `/`,',
    'and entry/exit actions as state notes. A transition declared on the machine itself is drawn from',
    'every state it applies to. See [architecture.md](architecture.md) for how they work together.',
  ];
  for (const { file, machine } of documentedMachines) {
    const description = (machine.root.description ?? '').trim();
    parts.push('', `## ${machine.id}`, '', `Defined in [\`${file}\`](../${file}).${description ? ` ${description}` : ''}`, '', '```mermaid', renderMermaid(machine), '```');
  }
  return `${parts.join('\n')}\n`;
}
