import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isSelfSignedRole, mayCertify, CERTIFIABLE_ROLES, ROLES, type Role } from './roles.ts';

describe('roles', () => {
  it('follows the two-tier model', () => {
    const allowed: [Role, Role][] = [
      ['root', 'intermediary'],
      ['root', 'oem'],
      ['intermediary', 'issuer-node'],
      ['intermediary', 'user'],
      ['intermediary', 'device'],
      // Below a central bank of its own, an intermediary certifies the makers of the devices it registers.
      ['intermediary', 'oem'],
    ];
    for (const issuer of ROLES) {
      for (const subject of ROLES) {
        const expected = allowed.some(([i, s]) => i === issuer && s === subject);
        assert.equal(mayCertify(issuer, subject), expected, `${issuer} → ${subject}`);
      }
    }
  });

  it('makes only the root self-signed, and lets nobody certify a root', () => {
    assert.deepEqual(ROLES.filter(isSelfSignedRole), ['root']);
    for (const issuer of ROLES) assert.ok(!CERTIFIABLE_ROLES[issuer].includes('root'));
  });
});
