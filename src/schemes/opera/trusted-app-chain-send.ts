/** Sealing and opening the messages of the one-time-key chain (Equation 1) inside the ODW. */
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { accept, refuse, type CommandResult } from '../../secure-element/trusted-app.ts';
import { chainMessageCodec, type ChainMessage, type Ending, type Role } from './exchange.ts';
import { nextOtk, openMessage, sealMessage } from './otk.ts';
import type { Mount, OperaState } from './trusted-app-state.ts';

/** What a chain step answers: the next message for the partner (if any), and where the transaction is. */
export interface ChainOutput {
  readonly box?: Uint8Array;
  readonly count: number;
}

/** What a Stage 2/3 step of the ODW answers; `refused`: the payment ended before any key went out, nothing moved; `change`: at the end, the change given or taken. */
export type Step = CommandResult<OperaState, ChainOutput & { ending?: Ending; refused?: 'OPERA_NO_CHANGE'; change?: bigint }>;

function chainOf(state: OperaState): { mount: Mount; otk: Uint8Array } {
  const mount = state.mount;
  if (mount === undefined || (mount.stage !== 'chain' && mount.stage !== 'greeted') || mount.otk === undefined) refuse('OPERA_MOUNT_STATE', 'no secure mount: mount again');
  return { mount, otk: mount.otk };
}

function hashOf(state: OperaState) {
  if (state.params === undefined) refuse('NOT_CERTIFIED', 'the ODW has no bank parameters');
  return state.params.hash;
}

/** Seals `message` under the mount's current OTK and moves the chain on: the state with the box to send. */
export function sendChain(state: OperaState, message: ChainMessage, count: number): CommandResult<OperaState, ChainOutput & { box: Uint8Array }> {
  const { mount, otk } = chainOf(state);
  const plaintext = encodeCbor(chainMessageCodec.decode(message, 'message'));
  const box = sealMessage(otk, mount.index, mount.role, plaintext);
  return accept({ ...state, mount: { ...mount, otk: nextOtk(hashOf(state), otk, plaintext), index: mount.index + 1 } }, { box, count });
}

/**
 * Opens the partner's next message under the mount's current OTK and moves the chain on.
 * @throws TallyError AEAD_FAILED for a message out of the chain (replayed, reordered, altered, another mount's)
 */
export function receiveChain(state: OperaState): (box: Uint8Array) => { state: OperaState; message: ChainMessage } {
  return (box) => {
    const { mount, otk } = chainOf(state);
    const from: Role = mount.role === 'payer' ? 'payee' : 'payer';
    const plaintext = openMessage(otk, mount.index, from, box);
    const message = chainMessageCodec.decode(decodeCbor(plaintext), 'message');
    return { state: { ...state, mount: { ...mount, stage: 'chain', otk: nextOtk(hashOf(state), otk, plaintext), index: mount.index + 1 } }, message };
  };
}
