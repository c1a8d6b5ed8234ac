/**
 * The committed contract artifacts (contracts.generated.ts) are what contracts/*.sol compile to:
 * the contracts are recompiled with the bundled solc and compared byte for byte, so the ABI and
 * bytecode the chain code uses cannot drift from the sources.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { compileContracts, GENERATED_PATH, renderGenerated } from '../../../scripts/compile-contracts.ts';
import { offlineAccountsAbi, offlineAccountsBytecode, SOLC_VERSION, tallyTokenAbi, tallyTokenBytecode } from './contracts.generated.ts';

const FIX = 'run `npm run contracts` and commit src/schemes/chain/contracts.generated.ts';

describe('chain-tee contract artifacts', () => {
  it('are what the sources compile to, byte for byte', () => {
    const compiled = compileContracts();
    const committed = readFileSync(new URL(`../../../${GENERATED_PATH}`, import.meta.url), 'utf8');
    assert.equal(compiled.version, SOLC_VERSION, `the bundled solc is ${compiled.version}, the artifacts were made by ${SOLC_VERSION}: ${FIX}`);
    for (const contract of compiled.contracts) {
      const [abi, bytecode] = contract.name === 'TallyToken' ? [tallyTokenAbi, tallyTokenBytecode] : [offlineAccountsAbi, offlineAccountsBytecode];
      assert.deepEqual(contract.abi, abi, `the ABI of ${contract.name} differs from contracts/${contract.name}.sol: ${FIX}`);
      assert.equal(contract.bytecode, bytecode, `the bytecode of ${contract.name} differs from contracts/${contract.name}.sol: ${FIX}`);
    }
    assert.ok(renderGenerated(compiled) === committed, `${GENERATED_PATH} is not what the compiler writes: ${FIX}`);
  });

  it('name both contracts, with creation bytecode under the size limit when deployed', () => {
    for (const bytecode of [tallyTokenBytecode, offlineAccountsBytecode]) {
      assert.match(bytecode, /^0x(?:[0-9a-f]{2})+$/);
      // EIP-170: 24,576 bytes of runtime code; the creation code bounds it from above.
      assert.ok((bytecode.length - 2) / 2 < 24_576, `${(bytecode.length - 2) / 2} bytes`);
    }
    const names: string[] = offlineAccountsAbi.filter((item) => item.type === 'function').map((item) => item.name);
    for (const name of ['registerEnclave', 'revokeEnclave', 'deposit', 'reconcile', 'accountOf', 'paymentOf', 'totals']) assert.ok(names.includes(name), name);
  });
});
