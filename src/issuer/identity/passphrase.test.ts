import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromBase64url } from '../../core/bytes.ts';
import { resolvePassphrase, PASSPHRASE_ENV } from './passphrase.ts';

const POSIX = process.platform !== 'win32';

describe('resolvePassphrase', () => {
  let base = '';
  let n = 0;
  const fresh = () => join(base, `data-${++n}`);
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'tally-passphrase-'));
  });
  after(async () => {
    await rm(base, { recursive: true, force: true });
  });

  it('takes TALLY_NODE_PASSPHRASE when it is set, and writes nothing', async () => {
    const dataDir = fresh();
    const resolved = await resolvePassphrase({ dataDir, env: { [PASSPHRASE_ENV]: 'from the environment' } });
    assert.deepEqual(resolved, { passphrase: 'from the environment', generated: false, warning: undefined });
    await assert.rejects(stat(dataDir), { code: 'ENOENT' });
  });

  it('refuses an empty TALLY_NODE_PASSPHRASE', async () => {
    await assert.rejects(resolvePassphrase({ dataDir: fresh(), env: { [PASSPHRASE_ENV]: '' } }), {
      code: 'DECODE_FAILED',
      message: /TALLY_NODE_PASSPHRASE is set but empty/,
    });
  });

  it('generates a passphrase in a 0600 file on first start, says so, and reuses it later', async () => {
    const dataDir = fresh();
    const first = await resolvePassphrase({ dataDir, env: {} });
    const file = join(dataDir, 'passphrase');
    assert.equal(first.generated, true);
    assert.equal(first.file, file);
    assert.equal(first.warning, `keys are encrypted with a generated passphrase kept beside them in ${file}; set TALLY_NODE_PASSPHRASE for real protection`);
    assert.equal(fromBase64url(first.passphrase).length, 32);
    assert.equal(await readFile(file, 'utf8'), `${first.passphrase}\n`);
    if (POSIX) {
      assert.equal((await stat(file)).mode & 0o777, 0o600);
      assert.equal((await stat(dataDir)).mode & 0o777, 0o700);
    }
    assert.deepEqual(await readdir(dataDir), ['passphrase'], 'no temporary file is left');
    const second = await resolvePassphrase({ dataDir, env: {} });
    assert.deepEqual(second, first);
  });

  it('refuses a passphrase file others can read, saying how to fix it', { skip: !POSIX }, async () => {
    const dataDir = fresh();
    await resolvePassphrase({ dataDir, env: {} });
    const file = join(dataDir, 'passphrase');
    await chmod(file, 0o644);
    await assert.rejects(resolvePassphrase({ dataDir, env: {} }), {
      code: 'STATE_CORRUPT',
      message: `passphrase file ${file} has mode 0644, so others than its owner can use it; run \`chmod 600 ${file}\` and start again`,
    });
    await chmod(file, 0o600);
    await resolvePassphrase({ dataDir, env: {} });
  });

  it('refuses an empty passphrase file', async () => {
    const dataDir = fresh();
    await mkdir(dataDir, { mode: 0o700 });
    await writeFile(join(dataDir, 'passphrase'), '\n', { mode: 0o600 });
    await assert.rejects(resolvePassphrase({ dataDir, env: {} }), { code: 'STATE_CORRUPT' });
  });

  it('does not generate a new passphrase for a data folder that already holds keys', async () => {
    const dataDir = fresh();
    await mkdir(join(dataDir, 'identity'), { recursive: true, mode: 0o700 });
    await assert.rejects(resolvePassphrase({ dataDir, env: {} }), {
      code: 'DECODE_FAILED',
      message: /holds keys, but TALLY_NODE_PASSPHRASE is not set/,
    });
    assert.deepEqual(await readdir(dataDir), ['identity'], 'no passphrase file was created');
  });

  it('warns when the variable overrides a generated passphrase file', async () => {
    const dataDir = fresh();
    await resolvePassphrase({ dataDir, env: {} });
    const resolved = await resolvePassphrase({ dataDir, env: { [PASSPHRASE_ENV]: 'chosen' } });
    assert.equal(resolved.passphrase, 'chosen');
    assert.equal(resolved.generated, false);
    assert.match(resolved.warning ?? '', /is not used/);
  });
});
