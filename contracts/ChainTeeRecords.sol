// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice One payment of an upload: the Payment's fields (in the type's order), State.balance,
/// σ_att, σ_1, the ack status and σ_2. Signatures are compact (EIP-2098): r and vs = yParity<<255 | s.
struct UploadItem {
    address payer;
    address payee;
    uint128 amount;
    uint64 counter;
    uint64 tGen;
    uint8 kind;
    address enclave;
    uint128 stateBalance;
    bytes32 attR;
    bytes32 attVS;
    bytes32 payerR;
    bytes32 payerVS;
    uint8 ack;
    bytes32 ackR;
    bytes32 ackVS;
}

/// @title ChainTeeRecords: the EIP-712 records of chain-tee (docs/chain.md) and their signatures.
/// @notice Type hashes, struct hashes and digests in the domain {name "Tally chain-tee", version "1",
/// chainId, verifyingContract}, and signature recovery that refuses a high s, a v other than 27 or
/// 28, and a signature ecrecover cannot recover.
library ChainTeeRecords {
    bytes32 internal constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 internal constant NAME_HASH = keccak256("Tally chain-tee");
    bytes32 internal constant VERSION_HASH = keccak256("1");
    bytes32 internal constant STATE_TYPEHASH = keccak256("State(address account,uint64 counter,uint128 balance)");
    bytes32 internal constant PAYMENT_TYPEHASH = keccak256(
        "Payment(address payer,address payee,uint128 amount,uint64 counter,uint64 tGen,uint8 kind,address enclave,bytes32 attestation)"
    );
    bytes32 internal constant ACK_TYPEHASH = keccak256("Ack(bytes32 payment,address payee,bool ok)");
    bytes32 internal constant UPLOAD_TYPEHASH = keccak256("Upload(address account,bytes32 items)");

    /// @dev secp256k1 n / 2: a larger s is the malleated twin of a valid signature.
    uint256 internal constant HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    /// @notice An upload signature that is not 65 bytes r‖s‖v with a low s and v 27 or 28, or recovers no one.
    error MalformedSignature();

    /// @dev The domain separator of `verifyingContract` on this chain.
    function separator(address verifyingContract) internal view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, verifyingContract));
    }

    /// @dev The State struct hash (what σ_att signs).
    function stateHash(address account, uint64 counter, uint128 balance) internal pure returns (bytes32) {
        return hash4(STATE_TYPEHASH, bytes32(uint256(uint160(account))), bytes32(uint256(counter)), bytes32(uint256(balance)));
    }

    /// @dev The Ack struct hash (what σ_2 signs).
    function ackHash(bytes32 payment, address payee, bool ok) internal pure returns (bytes32) {
        return hash4(ACK_TYPEHASH, payment, bytes32(uint256(uint160(payee))), bytes32(uint256(ok ? 1 : 0)));
    }

    /// @dev The Upload struct hash: items = keccak256 of the words given (each item's Payment hash and ack status), concatenated in order.
    function uploadHash(address account, bytes32[] memory hashes) internal pure returns (bytes32) {
        bytes32 items;
        assembly ("memory-safe") {
            items := keccak256(add(hashes, 0x20), shl(5, mload(hashes)))
        }
        return hash3(UPLOAD_TYPEHASH, bytes32(uint256(uint160(account))), items);
    }

    /// @dev The Payment struct hash of an item; `attestation` is keccak256 of σ_att as r‖s‖v.
    function paymentHash(UploadItem calldata it) internal pure returns (bytes32 h) {
        (bytes32 r, uint256 s, uint8 v) = split(it.attVS, it.attR);
        bytes32 attestation;
        // Scratch memory past the free pointer; nothing is allocated while it is in use.
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, r)
            mstore(add(m, 0x20), s)
            mstore8(add(m, 0x40), v)
            attestation := keccak256(m, 65)
        }
        bytes32 typeHash = PAYMENT_TYPEHASH;
        address payer = it.payer;
        address payee = it.payee;
        uint128 amount = it.amount;
        uint64 counter = it.counter;
        uint64 tGen = it.tGen;
        uint8 kind = it.kind;
        address enclave = it.enclave;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, typeHash)
            mstore(add(m, 0x20), payer)
            mstore(add(m, 0x40), payee)
            mstore(add(m, 0x60), amount)
            mstore(add(m, 0x80), counter)
            mstore(add(m, 0xa0), tGen)
            mstore(add(m, 0xc0), kind)
            mstore(add(m, 0xe0), enclave)
            mstore(add(m, 0x100), attestation)
            h := keccak256(m, 0x120)
        }
    }

    function hash3(bytes32 a, bytes32 b, bytes32 c) internal pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, a)
            mstore(add(m, 0x20), b)
            mstore(add(m, 0x40), c)
            h := keccak256(m, 0x60)
        }
    }

    function hash4(bytes32 a, bytes32 b, bytes32 c, bytes32 d) internal pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, a)
            mstore(add(m, 0x20), b)
            mstore(add(m, 0x40), c)
            mstore(add(m, 0x60), d)
            h := keccak256(m, 0x80)
        }
    }

    /// @dev keccak256(0x1901 ‖ domain separator ‖ structHash).
    function digest(bytes32 domain, bytes32 structHash) internal pure returns (bytes32 d) {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, 0x1901000000000000000000000000000000000000000000000000000000000000)
            mstore(add(m, 0x02), domain)
            mstore(add(m, 0x22), structHash)
            d := keccak256(m, 0x42)
        }
    }

    /// @dev r, s and v (27 or 28) of a compact signature.
    function split(bytes32 vs, bytes32 r) internal pure returns (bytes32, uint256, uint8) {
        return (r, uint256(vs) & (type(uint256).max >> 1), uint8(uint256(vs) >> 255) + 27);
    }

    /// @dev The signer of a compact signature, or zero if it is malformed (high s) or invalid.
    function recoverCompact(bytes32 hash, bytes32 r, bytes32 vs) internal pure returns (address) {
        (, uint256 s, uint8 v) = split(vs, r);
        if (s > HALF_N) return address(0);
        return ecrecover(hash, v, r, bytes32(s));
    }

    /// @dev The signer of a 65-byte r‖s‖v signature; reverts if it is malformed or invalid.
    function recoverBytes(bytes32 hash, bytes calldata sig) internal pure returns (address signer) {
        if (sig.length != 65) revert MalformedSignature();
        bytes32 r;
        uint256 s;
        uint8 v;
        assembly ("memory-safe") {
            r := calldataload(sig.offset)
            s := calldataload(add(sig.offset, 0x20))
            v := byte(0, calldataload(add(sig.offset, 0x40)))
        }
        if (s > HALF_N || (v != 27 && v != 28)) revert MalformedSignature();
        signer = ecrecover(hash, v, r, bytes32(s));
        if (signer == address(0)) revert MalformedSignature();
    }
}
