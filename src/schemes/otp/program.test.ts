/**
 * The one-time program's behavioural section (OTP §2.7): the paper's program and version 2's
 * conditions pass; an unknown version, a wrong checksum, an unknown instruction, another order,
 * a duplicated or misplaced condition and bad arguments are each refused before anything runs;
 * the conditions refuse the payments they forbid.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeCbor, encodeCbor } from '../../core/cbor.ts';
import { isTallyError } from '../../core/errors.ts';
import { buildProgram, checkConditions, checkProgram, PAPER_STEPS, programChecksum, programCodec, type Instruction, type Program } from './program.ts';

/** A program with `instructions` and their correct checksum (what a forger who knows the hash can make). */
function resealed(schemaVersion: number, instructions: Instruction[]): Program {
  return { schemaVersion, instructions, checksum: programChecksum(instructions) };
}

function refusedFor(fault: string) {
  return (e: unknown) => isTallyError(e, 'OTP_PROGRAM_INVALID') && e.details.fault === fault;
}

const DAY = 86_400_000;
const until = Date.UTC(2027, 0, 1);
const v2 = buildProgram(2, [
  { kind: 'checkExpiry', until },
  { kind: 'checkPayeeCategory', categories: ['grocery', 'pharmacy'] },
  { kind: 'checkMaxHops', hops: 3 },
]);

test("the paper's program: its seven steps in order, version 1, no conditions; it survives the wire", () => {
  const program = buildProgram(1);
  assert.deepEqual(program.instructions.map((i) => i.op), [...PAPER_STEPS]);
  assert.deepEqual(checkProgram(program), { schemaVersion: 1, conditions: [] });
  const back = programCodec.decode(decodeCbor(encodeCbor(program)));
  assert.deepEqual(checkProgram(back), { schemaVersion: 1, conditions: [] });
});

test('version 2 carries its conditions between checkCallMethod and setupConnection', () => {
  assert.deepEqual(v2.instructions.map((i) => i.op), ['checkIntegrityOfOTP', 'checkTokenFormat', 'checkCallMethod', 'checkExpiry', 'checkPayeeCategory', 'checkMaxHops', 'setupConnection', 'buildSandbox', 'sendOTP', 'destroyOTP']);
  const checked = checkProgram(programCodec.decode(decodeCbor(encodeCbor(v2))));
  assert.deepEqual(checked.conditions, [
    { kind: 'checkExpiry', until },
    { kind: 'checkPayeeCategory', categories: ['grocery', 'pharmacy'] },
    { kind: 'checkMaxHops', hops: 3 },
  ]);
});

test('an unknown schema version is refused, and version 1 does not run version 2 instructions', () => {
  assert.throws(() => checkProgram({ ...buildProgram(1), schemaVersion: 3 }), refusedFor('schema-unknown'));
  assert.throws(() => checkProgram({ ...v2, schemaVersion: 1 }), refusedFor('instruction-unknown'));
});

test('a checksum that is not the hash of the list is refused: an altered list, a flipped bit', () => {
  const altered = v2.instructions.map((i) => (i.op === 'checkMaxHops' ? { op: i.op, args: { hops: 60 } } : i));
  assert.throws(() => checkProgram({ ...v2, instructions: altered }), refusedFor('checksum'));
  const flipped = Uint8Array.from(v2.checksum);
  flipped[0] = (flipped[0] as number) ^ 1;
  assert.throws(() => checkProgram({ ...v2, checksum: flipped }), refusedFor('checksum'));
  const dropped = v2.instructions.filter((i) => i.op !== 'checkExpiry');
  assert.throws(() => checkProgram({ ...v2, instructions: dropped }), refusedFor('checksum'), 'a condition removed without the bank');
});

test('an instruction the player does not know is refused, even with a matching checksum', () => {
  const ops: Instruction[] = [...buildProgram(1).instructions];
  ops.splice(3, 0, { op: 'transferToAttacker' });
  assert.throws(() => checkProgram(resealed(1, ops)), refusedFor('instruction-unknown'));
  assert.throws(() => checkProgram(resealed(2, ops)), refusedFor('instruction-unknown'));
});

test('steps out of order, missing, repeated, or conditions out of place are refused', () => {
  const steps = (): Instruction[] => PAPER_STEPS.map((op) => ({ op }));
  const swapped = steps();
  [swapped[5], swapped[6]] = [swapped[6] as Instruction, swapped[5] as Instruction]; // destroy before send
  assert.throws(() => checkProgram(resealed(1, swapped)), refusedFor('order'));
  assert.throws(() => checkProgram(resealed(1, steps().filter((i) => i.op !== 'destroyOTP'))), refusedFor('order'));
  assert.throws(() => checkProgram(resealed(1, [...steps(), { op: 'sendOTP' }])), refusedFor('order'));
  const late = steps();
  late.splice(5, 0, { op: 'checkMaxHops', args: { hops: 2 } }); // after buildSandbox
  assert.throws(() => checkProgram(resealed(2, late)), refusedFor('order'));
  const twice = steps();
  twice.splice(3, 0, { op: 'checkMaxHops', args: { hops: 2 } }, { op: 'checkMaxHops', args: { hops: 9 } });
  assert.throws(() => checkProgram(resealed(2, twice)), refusedFor('order'));
});

test('arguments a step or condition does not take are refused', () => {
  const withArgs = PAPER_STEPS.map((op): Instruction => (op === 'sendOTP' ? { op, args: { to: 'x' } } : { op }));
  assert.throws(() => checkProgram(resealed(1, withArgs)), refusedFor('arguments'));
  for (const args of [{ hops: 0 }, { hops: 65 }, { hops: 2, extra: 1 }, {}, { hops: '2' }]) {
    const ops = PAPER_STEPS.map((op): Instruction => ({ op }));
    ops.splice(3, 0, { op: 'checkMaxHops', args });
    assert.throws(() => checkProgram(resealed(2, ops)), refusedFor('arguments'), JSON.stringify(args));
  }
  const badCategory = PAPER_STEPS.map((op): Instruction => ({ op }));
  badCategory.splice(3, 0, { op: 'checkPayeeCategory', args: { categories: ['Not A Category'] } });
  assert.throws(() => checkProgram(resealed(2, badCategory)), refusedFor('arguments'));
});

test('the codec refuses a malformed section: no instructions, too many, a bad checksum length, extra fields', () => {
  const wire = (p: unknown) => () => programCodec.decode(decodeCbor(encodeCbor(p)));
  assert.throws(wire({ ...v2, instructions: [] }), (e: unknown) => isTallyError(e, 'DECODE_FAILED'));
  assert.throws(wire({ ...v2, instructions: Array.from({ length: 17 }, () => ({ op: 'sendOTP' })) }), (e: unknown) => isTallyError(e, 'DECODE_FAILED'));
  assert.throws(wire({ ...v2, checksum: new Uint8Array(31) }), (e: unknown) => isTallyError(e, 'DECODE_FAILED'));
  assert.throws(wire({ ...v2, instructions: [{ op: 'sendOTP', when: 1 }] }), (e: unknown) => isTallyError(e, 'DECODE_FAILED'));
  assert.throws(wire({ ...v2, extra: 1 }), (e: unknown) => isTallyError(e, 'DECODE_FAILED'));
});

test('the conditions refuse the payments they forbid, and let the others through', () => {
  const checked = checkProgram(v2);
  const fine = { now: until - DAY, payeeCategory: 'grocery', hop: 3 };
  checkConditions(checked, fine);
  const forbids = (condition: string) => (e: unknown) => isTallyError(e, 'OTP_CONDITION') && e.details.condition === condition;
  assert.throws(() => checkConditions(checked, { ...fine, now: until + 1 }), forbids('checkExpiry'));
  assert.throws(() => checkConditions(checked, { ...fine, now: null }), forbids('checkExpiry'), 'no trusted time: not paid');
  assert.throws(() => checkConditions(checked, { ...fine, payeeCategory: 'casino' }), forbids('checkPayeeCategory'));
  assert.throws(() => checkConditions(checked, { ...fine, payeeCategory: null }), forbids('checkPayeeCategory'));
  assert.throws(() => checkConditions(checked, { ...fine, hop: 4 }), forbids('checkMaxHops'));
  checkConditions(checkProgram(buildProgram(1)), { now: null, payeeCategory: null, hop: 1000 });
});
