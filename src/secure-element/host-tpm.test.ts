import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { encodeCbor } from '../core/cbor.ts';
import { randomBytes } from '../core/crypto/hash.ts';
import { isTallyError } from '../core/errors.ts';
import { nodeProvider } from '../providers/node-crypto.ts';
import { toyPurse, type PurseState } from './apps/toy-purse.ts';
import { TpmCounter } from './counter-tpm.ts';
import { InProcessHost, type HostOptions } from './host.ts';
import { IsolatedHost } from './host-isolated.ts';
import { FileStorage } from './storage-file.ts';
import { startSwtpm, swtpmAvailable, type Swtpm } from './swtpm.ts';

const available = await swtpmAvailable();
const skipRequested = process.env['TALLY_SKIP_TPM'] === '1';
if (!available && !skipRequested) {
  test('swtpm and tpm2-tools are installed', () => {
    assert.fail('swtpm not found: install the Debian packages swtpm swtpm-tools tpm2-tools (or set TALLY_SKIP_TPM=1 to skip the TPM tests)');
  });
}

const payee = new Uint8Array(32).fill(3);

describe('secure element host with a TPM 2.0 NV counter (swtpm)', { skip: available ? false : 'swtpm is not installed' }, () => {
  let root = '';
  let tpm: Swtpm | null = null;
  let nextIndex = 0x01800200;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tally-se-tpm-'));
    tpm = await startSwtpm({ stateDir: join(root, 'swtpm') });
  });
  after(async () => {
    await tpm?.stop();
    await rm(root, { recursive: true, force: true });
  });

  function options(dir: string, nvIndex: number): HostOptions<PurseState, typeof toyPurse.commands> {
    assert.ok(tpm !== null);
    return { app: toyPurse, storage: new FileStorage(dir), counter: new TpmCounter({ tcti: tpm.tcti, nvIndex }), provider: nodeProvider };
  }

  test('a restored older sealed file is detected as rollback with the TPM counter', async () => {
    const dir = join(root, 'rollback');
    const nvIndex = nextIndex++;
    const se = await InProcessHost.provision(options(dir, nvIndex));
    await se.call('load', { amount: 100n });
    await copyFile(join(dir, 'toy-purse.sealed'), join(dir, 'saved'));
    await se.call('spend', { amount: 100n, payee });
    await se.close();

    await copyFile(join(dir, 'saved'), join(dir, 'toy-purse.sealed'));
    await assert.rejects(InProcessHost.open(options(dir, nvIndex)), (e) => isTallyError(e, 'ROLLBACK_DETECTED'));
  });

  test('a commit cut between rename and increment is rolled forward on the TPM counter', async () => {
    assert.ok(tpm !== null);
    const dir = join(root, 'roll-forward');
    const counter = { kind: 'tpm' as const, tcti: tpm.tcti, nvIndex: nextIndex++ };
    const location = { module: new URL('./apps/toy-purse.ts', import.meta.url).href, export: 'toyPurse' };
    const se = await IsolatedHost.start({ app: toyPurse, location, dir, counter, provision: true });
    await se.call('load', { amount: 10n });
    await se.armCrash('after-rename');
    const requestId = randomBytes(16);
    await assert.rejects(se.call('spend', { amount: 4n, payee }, { requestId }), (e) => isTallyError(e, 'SE_CRASHED'));

    const restarted = await IsolatedHost.start({ app: toyPurse, location, dir, counter });
    assert.deepEqual(await restarted.call('balance', {}), { balance: 6n, spent: 1n });
    const before = await new TpmCounter({ tcti: tpm.tcti, nvIndex: counter.nvIndex }).read();
    const retried = await restarted.call('spend', { amount: 4n, payee }, { requestId });
    assert.equal(retried.index, 1n);
    assert.equal(await new TpmCounter({ tcti: tpm.tcti, nvIndex: counter.nvIndex }).read(), before);
    assert.deepEqual(encodeCbor(await restarted.call('spend', { amount: 4n, payee }, { requestId })), encodeCbor(retried));
    await restarted.close();
  });
});
