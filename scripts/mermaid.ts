/**
 * Draws a statechart as a Mermaid `stateDiagram-v2`, straight from the
 * machine definition (`machine.root`): nested states, initial and final
 * states, guards, delayed transitions and invoked actors, entry and exit
 * actions. docs/machines.md is generated with it; never edit the diagrams by hand.
 */
import type { AnyStateMachine } from 'xstate';

type AnyNode = AnyStateMachine['root'];
type AnyTransition = NonNullable<ReturnType<AnyNode['transitions']['get']>>[number];

/** The Mermaid id of a state: its path joined with `_` (ids are global in Mermaid). */
function idOf(node: AnyNode): string {
  return node.path.length === 0 ? 'root' : node.path.join('_');
}

/** The name of a named action, guard or actor, or `anonymous`. */
function nameOf(thing: unknown): string {
  if (typeof thing === 'string') return thing;
  if (typeof thing === 'function' && typeof (thing as unknown as { type?: unknown }).type === 'string') return (thing as unknown as { type: string }).type;
  if (thing && typeof thing === 'object' && 'type' in thing && typeof (thing as { type: unknown }).type === 'string') {
    return (thing as { type: string }).type;
  }
  if (typeof thing === 'function') return (thing as { name?: string }).name || 'anonymous';
  return 'anonymous';
}

/**
 * What a transition is triggered by, readably: `CONNECT`, `after connectTimeout`,
 * `persistBatch done` (no colons: Mermaid ends a label at one).
 */
function triggerOf(t: AnyTransition): string {
  const delay = (t as { delay?: unknown }).delay;
  if (delay !== undefined) return `after ${typeof delay === 'number' ? `${delay} ms` : String(delay)}`;
  const type = t.eventType;
  const done = /^xstate\.done\.actor\.(.+)$/.exec(type);
  if (done) return `${done[1]} done`;
  const error = /^xstate\.error\.actor\.(.+)$/.exec(type);
  if (error) return `${error[1]} error`;
  return type;
}

function named(action: string): boolean {
  return !action.startsWith('xstate.');
}

function labelOf(t: AnyTransition): string {
  const guard = t.guard === undefined ? '' : ` [${nameOf(t.guard)}]`;
  const actions = t.actions.map(nameOf);
  return `${triggerOf(t)}${guard}${actions.length ? ` / ${actions.join(', ')}` : ''}`;
}

function transitionsOf(node: AnyNode): AnyTransition[] {
  const out: AnyTransition[] = [];
  for (const list of node.transitions.values()) out.push(...list);
  return out;
}

function renderNode(node: AnyNode, indent: string, lines: string[], rootTransitions: AnyTransition[]): void {
  const children = Object.values(node.states) as AnyNode[];
  if (children.length > 0) {
    const initial = node.initial?.target?.[0] as AnyNode | undefined;
    if (initial) lines.push(`${indent}[*] --> ${idOf(initial)}`);
  }
  for (const child of children) {
    const id = idOf(child);
    const grandchildren = Object.values(child.states);
    if (grandchildren.length > 0) {
      lines.push(`${indent}state "${child.key}" as ${id} {`);
      renderNode(child, `${indent}  `, lines, rootTransitions);
      lines.push(`${indent}}`);
    } else {
      lines.push(`${indent}state "${child.key}" as ${id}`);
    }
    const effects = [
      // XState's own raise/cancel of `after` timers are shown as the delayed transitions instead.
      ...child.entry.map(nameOf).filter(named).map((a) => `entry / ${a}`),
      ...child.exit.map(nameOf).filter(named).map((a) => `exit / ${a}`),
      ...child.invoke.map((i) => `invoke ${nameOf(i.src)}`),
    ];
    for (const effect of effects) lines.push(`${indent}${id} : ${effect}`);
    if (child.type === 'final') lines.push(`${indent}${id} --> [*]`);
  }
  for (const child of children) {
    for (const t of transitionsOf(child)) {
      const targets = (t.target ?? [child]) as AnyNode[];
      for (const target of targets) lines.push(`${indent}${idOf(child)} --> ${idOf(target)} : ${labelOf(t)}`);
    }
    // Transitions declared on the machine itself apply in every (non-final) state.
    if (node.path.length === 0 && child.type !== 'final') {
      for (const t of rootTransitions) {
        for (const target of (t.target ?? []) as AnyNode[]) {
          if (target !== child) lines.push(`${indent}${idOf(child)} --> ${idOf(target)} : ${labelOf(t)}`);
        }
      }
    }
  }
}

/**
 * The Mermaid `stateDiagram-v2` of a machine.
 *
 * @example
 * ```ts
 * renderMermaid(connectionMachine); // 'stateDiagram-v2\n  [*] --> disconnected\n  ...'
 * ```
 */
export function renderMermaid(machine: AnyStateMachine): string {
  const root = machine.root;
  const rootTransitions = transitionsOf(root);
  const lines = ['stateDiagram-v2'];
  renderNode(root, '  ', lines, rootTransitions);
  const everywhere = rootTransitions.filter((t) => !t.target || t.target.length === 0);
  if (everywhere.length) {
    const first = Object.values(root.states)[0] as AnyNode;
    lines.push(`  note right of ${idOf(first)}`, ...everywhere.map((t) => `    in every state: ${labelOf(t)}`), '  end note');
  }
  return lines.join('\n');
}

/** Every state of a machine as a dotted path, e.g. `session.online.pinging`. */
export function statePaths(machine: AnyStateMachine): string[] {
  const out: string[] = [];
  const walk = (node: AnyNode) => {
    for (const child of Object.values(node.states) as AnyNode[]) {
      out.push(child.path.join('.'));
      walk(child);
    }
  };
  walk(machine.root);
  return out;
}

/**
 * The key of a transition definition, as coverage reports name it:
 * `source --trigger [guard]--> target`, with `(machine)` for a transition
 * declared on the machine itself; a targetless one targets its source.
 */
export function transitionKey(t: AnyTransition): string {
  const path = (n: AnyNode) => (n.path.length === 0 ? '(machine)' : n.path.join('.'));
  const guard = t.guard === undefined ? '' : ` [${nameOf(t.guard)}]`;
  const targets = (t.target && t.target.length ? t.target : [t.source]) as AnyNode[];
  return targets.map((target) => `${path(t.source as AnyNode)} --${triggerOf(t)}${guard}--> ${path(target)}`).join(' & ');
}

/** Every transition definition of a machine, by {@link transitionKey}. */
export function transitionLabels(machine: AnyStateMachine): string[] {
  const out: string[] = [];
  const walk = (node: AnyNode) => {
    for (const t of transitionsOf(node)) out.push(transitionKey(t));
    for (const child of Object.values(node.states) as AnyNode[]) walk(child);
  };
  walk(machine.root);
  return out;
}
