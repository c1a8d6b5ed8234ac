// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ChainTeeRecords, UploadItem} from "./ChainTeeRecords.sol";

/// @notice The part of the token this contract uses (TallyToken).
interface ITallyToken {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

/// @title OfflineAccounts: the chain-tee intermediary (docs/chain.md).
/// @notice Each device's TEE holds an offline account (a secp256k1 key and its address). Money
/// enters an account by `deposit`, moves offline between TEEs as signed payments, and is settled
/// here when a TEE uploads what it stored (`reconcile`): every signature is checked, balances move
/// on chain, and a withdrawal or closing pays tokens out.
///
/// Invariant: the contract's token balance equals the sum of all account balances (`totals`).
///
/// Signed records are EIP-712 typed data in the domain {name "Tally chain-tee", version "1",
/// chainId, verifyingContract = this}:
///   State(address account,uint64 counter,uint128 balance)          σ_att, by the enclave key
///   Payment(address payer,address payee,uint128 amount,uint64 counter,uint64 tGen,uint8 kind,address enclave,bytes32 attestation)
///                                                                   σ_1, by the payer's account key
///   Ack(bytes32 payment,address payee,bool ok)                     σ_2, by the payee's account key
///   Upload(address account,bytes32 items)                          by the uploader's enclave key
/// `Payment.attestation` is keccak256 of σ_att's 65 bytes r‖s‖v; `Ack.payment` is the Payment's
/// struct hash; `Upload.items` is keccak256 of, for each item in order, its Payment struct hash and its ack status (0 none, 1 ack_win, 2 ack_fail) as a word, concatenated in
/// order. Signatures must have a low s and v 27 or 28; in an upload item they travel compact
/// (EIP-2098: r and yParity‖s), the upload's own signature as 65 bytes.
///
/// The freeze rule (who is frozen for what):
/// - An item that a correct TEE would itself have refused offline proves the uploader's TEE broken,
///   since only that TEE could sign the Upload: σ_att not by `enclave` (this covers a State whose
///   counter is not the Payment's: the State is rebuilt from the Payment), σ_1 not by the payer,
///   σ_2 not by the payee, a malformed signature, amount 0 or above State.balance, a kind or an
///   ack status out of range, an ack on a withdrawal or a closing, a withdrawal or closing that is
///   not the uploader's own, an offline payment the uploader is neither payer nor payee of, the
///   uploader's own payment attested by another enclave than the one signing the upload, a zero
///   payee or a withdrawal to this contract. Then the uploader is frozen, nothing else changes and
///   `reconcile` returns false. It does not revert: a revert would undo the freeze.
/// - Faults a correct TEE could not see offline are the payer's: the payment's enclave not (or no
///   longer) registered here, the payer's account bound to another enclave, or a fork (two
///   payments with the same payer and counter). The payer is frozen, the fact recorded, and the
///   payer's acknowledged payments are honoured at once up to what it holds on chain (`Shortfall`
///   records the rest).
/// - A payee's account key that signed both ack_win and ack_fail for one payment freezes the payee.
/// - An upload signature that does not recover to the uploader's bound enclave (or, if it is not
///   bound yet, to a registered one) reverts: nothing in it can be attributed.
/// - An account is bound to an enclave by its first verified payment: σ_1 by the account key names
///   the enclave, σ_att by that enclave. An upload signature alone binds nothing (any registered
///   enclave could sign one for an unbound account), so an upload with a faulty item by an account
///   not yet bound reverts (`UnattributableUpload`) instead of freezing an account it may not hold.
contract OfflineAccounts {
    /// @dev One storage slot per account: balance, deposits made, status.
    struct Account {
        uint128 balance;
        uint64 deposits;
        uint8 status;
    }

    /// @dev Counts of one reconcile, for its Reconciled event.
    struct Tally {
        uint32 applied;
        uint32 recorded;
        uint32 failed;
    }

    /// @notice Most items one upload may carry.
    uint256 public constant MAX_ITEMS = 64;

    /// @notice Account status.
    uint8 public constant STATUS_NONE = 0;
    uint8 public constant STATUS_OPEN = 1;
    uint8 public constant STATUS_FROZEN = 2;
    uint8 public constant STATUS_CLOSED = 3;

    /// @notice Payment kinds.
    uint8 public constant KIND_PAY = 0;
    uint8 public constant KIND_WITHDRAW = 1;
    uint8 public constant KIND_CLOSE = 2;

    /// @notice Ack status of an upload item.
    uint8 public constant ACK_NONE = 0;
    uint8 public constant ACK_WIN = 1;
    uint8 public constant ACK_FAIL = 2;

    /// @notice Payment state: recorded (no ack seen), owed (ack_win seen, the payer short on chain),
    /// then final: applied, failed, voided.
    uint8 public constant PAYMENT_NONE = 0;
    uint8 public constant PAYMENT_RECORDED = 1;
    uint8 public constant PAYMENT_OWED = 2;
    uint8 public constant PAYMENT_APPLIED = 3;
    uint8 public constant PAYMENT_FAILED = 4;
    uint8 public constant PAYMENT_VOIDED = 5;

    /// @notice Freeze reasons, the uploader's (1..19).
    uint8 public constant FAULT_KIND = 1;
    uint8 public constant FAULT_ACK_STATUS = 2;
    uint8 public constant FAULT_AMOUNT = 3;
    uint8 public constant FAULT_PAYEE = 4;
    uint8 public constant FAULT_NOT_PARTY = 5;
    uint8 public constant FAULT_ACK_ON_PAY_OUT = 6;
    uint8 public constant FAULT_NOT_OWN_PAY_OUT = 7;
    uint8 public constant FAULT_ATTESTATION = 8;
    uint8 public constant FAULT_PAYER_SIGNATURE = 9;
    uint8 public constant FAULT_ACK_SIGNATURE = 10;
    uint8 public constant FAULT_OTHER_ENCLAVE = 11;
    /// @notice Freeze reasons, the payer's or the payee's (20..).
    uint8 public constant FAULT_ENCLAVE_UNREGISTERED = 20;
    uint8 public constant FAULT_ENCLAVE_MISMATCH = 21;
    uint8 public constant FAULT_FORK = 22;
    uint8 public constant FAULT_CONFLICTING_ACK = 23;
    /// @notice An intermediary's state here.
    uint8 public constant INTERMEDIARY_NONE = 0;
    uint8 public constant INTERMEDIARY_ADMITTED = 1;
    uint8 public constant INTERMEDIARY_REVOKED = 2;


    /// @dev A payment slot holds the payment's hash with its low byte replaced by the state.
    uint256 private constant TAG_MASK = ~uint256(0xff);

    /// @notice The token accounts are held in.
    ITallyToken public immutable token;
    /// @notice The central bank (the deployment's governor): admits and revokes intermediaries,
    /// registers and revokes enclave keys.
    address public immutable bank;
    /// @notice Seconds after a payment's tGen after which its payer may void it if no ack was seen.
    uint64 public immutable settleWindow;

    bytes32 private immutable _cachedSeparator;
    uint256 private immutable _cachedChainId;

    mapping(address => Account) private _accounts;
    /// @notice The enclave an account is bound to (zero: not yet bound).
    mapping(address => address) public enclaveOf;
    /// @notice Who registered each enclave key and has not revoked it: the bank, or an intermediary
    /// it admitted (zero: not registered, or revoked). One slot per enclave, read once per check.
    mapping(address => address) public registrarOf;
    /// @notice Each intermediary's chain address: INTERMEDIARY_NONE, _ADMITTED or _REVOKED (final).
    mapping(address => uint8) public intermediaryState;
    mapping(address => mapping(uint64 => uint256)) private _payments;
    /// @dev The state of a fork's other branches, by their full payment hash.
    mapping(bytes32 => uint8) private _forkStates;
    /// @dev Sum of all account balances, and everything paid out; one slot.
    uint128 private _held;
    uint128 private _withdrawn;

    /// @notice A deposit credited on chain; `index` counts the account's deposits from 0.
    event Deposited(address indexed account, uint64 index, uint128 amount, address indexed from);
    /// @notice An offline payment applied: `honored` moved from payer to payee.
    event Applied(address indexed payer, uint64 indexed counter, bytes32 payment, address indexed payee, uint128 honored);
    /// @notice A payment stored, waiting: for an ack (`acknowledged` false) or for the payer's funds.
    event Recorded(address indexed payer, uint64 indexed counter, bytes32 payment, bool acknowledged);
    /// @notice A payment refused for good (ack_fail, or a withdrawal or closing that cannot be).
    event Failed(address indexed payer, uint64 indexed counter, bytes32 payment);
    /// @notice A payment without ack voided by its payer after the settlement window.
    event Voided(address indexed payer, uint64 indexed counter, bytes32 payment);
    /// @notice A payment already final (`state`) uploaded again: nothing moved.
    event Duplicate(address indexed payer, uint64 indexed counter, bytes32 payment, uint8 state);
    /// @notice Two payments with one payer and counter; `first` is the stored one (its low byte zeroed).
    event ForkProved(address indexed payer, uint64 indexed counter, bytes32 first, bytes32 second);
    /// @notice An account frozen, with a FAULT_* reason.
    event Frozen(address indexed account, uint8 reason);
    /// @notice What a frozen payer could not honour of an acknowledged payment.
    event Shortfall(address indexed payer, uint64 indexed counter, address indexed payee, uint128 missing);
    /// @notice A withdrawal paid out to an on-chain address.
    event Withdrawn(address indexed account, uint64 indexed counter, bytes32 payment, address indexed to, uint128 amount);
    /// @notice An account closed, its whole balance paid out.
    event Closed(address indexed account, uint64 indexed counter, bytes32 payment, address indexed to, uint128 amount);
    /// @notice One upload settled.
    event Reconciled(address indexed account, uint32 applied, uint32 recorded, uint32 failed);
    /// @notice An enclave key registered by the bank.
    event EnclaveRegistered(address indexed enclave);
    /// @notice An enclave key revoked by the bank.
    event EnclaveRevoked(address indexed enclave);
    /// @notice An account bound to its enclave.
    event Bound(address indexed account, address indexed enclave);
    /// @notice An intermediary admitted by the bank: it registers its own customers' enclave keys.
    event IntermediaryAdmitted(address indexed intermediary);
    /// @notice An intermediary revoked by the bank, for good: every enclave it registered stops counting as registered.
    event IntermediaryRevoked(address indexed intermediary);

    error NotBank(address caller);
    error NotRegistrar(address caller);
    error IntermediaryAlreadyAdmitted(address intermediary);
    error IntermediaryNotAdmitted(address intermediary);
    error ZeroAddress();
    error ZeroAmount();
    error ZeroWindow();
    error AccountFrozen(address account);
    error AccountClosed(address account);
    error EnclaveAlreadyRegistered(address enclave);
    error EnclaveNotRegistered(address enclave);
    error EmptyUpload();
    error TooManyItems(uint256 count, uint256 max);
    error UnknownUploadSigner(address signer);
    error UnattributableUpload(uint8 fault);
    error TokenTransferFailed();

    /// @param token_ the token accounts are held in
    /// @param bank_ the central bank
    /// @param settleWindowSeconds seconds after tGen before a payer may void an unacknowledged payment
    constructor(address token_, address bank_, uint64 settleWindowSeconds) {
        if (token_ == address(0) || bank_ == address(0)) revert ZeroAddress();
        if (settleWindowSeconds == 0) revert ZeroWindow();
        token = ITallyToken(token_);
        bank = bank_;
        settleWindow = settleWindowSeconds;
        _cachedChainId = block.chainid;
        _cachedSeparator = ChainTeeRecords.separator(address(this));
    }

    // ---------------------------------------------------------------- the bank

    /// @notice Admits an intermediary's chain address (the bank only): it may then register and
    /// revoke its own customers' enclave keys. A revoked intermediary is never admitted again.
    function admitIntermediary(address intermediary) external {
        if (msg.sender != bank) revert NotBank(msg.sender);
        if (intermediary == address(0) || intermediary == bank) revert ZeroAddress();
        if (intermediaryState[intermediary] != INTERMEDIARY_NONE) revert IntermediaryAlreadyAdmitted(intermediary);
        intermediaryState[intermediary] = INTERMEDIARY_ADMITTED;
        emit IntermediaryAdmitted(intermediary);
    }

    /// @notice Revokes an intermediary (the bank only), for good: the enclaves it registered are no
    /// longer registered, so their payments freeze their payers (acknowledged ones honoured up to
    /// what each payer holds) and their accounts take no deposit once frozen.
    function revokeIntermediary(address intermediary) external {
        if (msg.sender != bank) revert NotBank(msg.sender);
        if (intermediaryState[intermediary] != INTERMEDIARY_ADMITTED) revert IntermediaryNotAdmitted(intermediary);
        intermediaryState[intermediary] = INTERMEDIARY_REVOKED;
        emit IntermediaryRevoked(intermediary);
    }

    /// @notice Registers an enclave key (the bank, or an intermediary it admitted and has not revoked).
    function registerEnclave(address enclave) external {
        if (msg.sender != bank && intermediaryState[msg.sender] != INTERMEDIARY_ADMITTED) revert NotRegistrar(msg.sender);
        if (enclave == address(0)) revert ZeroAddress();
        if (registrarOf[enclave] != address(0)) revert EnclaveAlreadyRegistered(enclave);
        registrarOf[enclave] = msg.sender;
        emit EnclaveRegistered(enclave);
    }

    /// @notice Revokes an enclave key (the bank, or the intermediary that registered it): payments attested by it freeze their payer.
    function revokeEnclave(address enclave) external {
        address registrar = registrarOf[enclave];
        if (registrar == address(0)) revert EnclaveNotRegistered(enclave);
        if (msg.sender != bank && msg.sender != registrar) revert NotRegistrar(msg.sender);
        registrarOf[enclave] = address(0);
        emit EnclaveRevoked(enclave);
    }

    /// @notice True for an enclave key registered and not revoked, whose registrar is the bank or an intermediary still admitted.
    function registered(address enclave) public view returns (bool) {
        address registrar = registrarOf[enclave];
        if (registrar == address(0)) return false;
        return registrar == bank || intermediaryState[registrar] == INTERMEDIARY_ADMITTED;
    }

    // ---------------------------------------------------------------- deposits

    /// @notice Credits `account` with `amount` tokens taken from the caller (who must have approved them).
    function deposit(address account, uint128 amount) external {
        if (amount == 0) revert ZeroAmount();
        if (account == address(0)) revert ZeroAddress();
        Account storage a = _accounts[account];
        uint8 status = a.status;
        if (status == STATUS_FROZEN) revert AccountFrozen(account);
        if (status == STATUS_CLOSED) revert AccountClosed(account);
        uint64 index = a.deposits;
        a.balance += amount;
        a.deposits = index + 1;
        if (status == STATUS_NONE) a.status = STATUS_OPEN;
        _held += amount;
        emit Deposited(account, index, amount, msg.sender);
        if (!token.transferFrom(msg.sender, address(this), amount)) revert TokenTransferFailed();
    }

    // ---------------------------------------------------------------- reconciliation

    /// @notice Settles what `account`'s TEE uploaded (docs/chain.md): all items are verified first,
    /// then applied in order. Returns false when an item froze the uploader (nothing else changed).
    /// @param account the uploader (the offline account whose enclave signed `uploadSig`)
    /// @param items at most MAX_ITEMS payments with their attestations and acks
    /// @param uploadSig the enclave's 65-byte signature over Upload(account, items)
    function reconcile(address account, UploadItem[] calldata items, bytes calldata uploadSig) external returns (bool) {
        uint256 n = items.length;
        if (n == 0) revert EmptyUpload();
        if (n > MAX_ITEMS) revert TooManyItems(n, MAX_ITEMS);
        bytes32 separator = _domainSeparator();
        bytes32[] memory hashes = _hashItems(items);
        address signer = _uploadSigner(account, items, hashes, separator, uploadSig);
        address bound = enclaveOf[account];
        if (bound == address(0) ? !registered(signer) : signer != bound) revert UnknownUploadSigner(signer);
        uint8 fault = _verify(items, hashes, account, signer, separator);
        if (fault != 0) {
            // Only an enclave proven to hold the account (bound to it by the account key's own
            // signature on a payment) answers for it; any registered enclave may sign an upload
            // for an unbound account, so its faults are nobody's.
            if (bound == address(0)) revert UnattributableUpload(fault);
            _freeze(account, fault);
            return false;
        }
        _settleAll(account, items, hashes);
        return true;
    }

    /// @dev Applies the verified items in order and reports the counts.
    function _settleAll(address account, UploadItem[] calldata items, bytes32[] memory hashes) private {
        Tally memory tally;
        for (uint256 i; i < items.length; ++i) _settle(items[i], hashes[i], account, tally);
        emit Reconciled(account, tally.applied, tally.recorded, tally.failed);
    }

    /// @dev Every item's Payment struct hash, in order.
    function _hashItems(UploadItem[] calldata items) private pure returns (bytes32[] memory hashes) {
        uint256 n = items.length;
        hashes = new bytes32[](n);
        for (uint256 i; i < n; ++i) hashes[i] = ChainTeeRecords.paymentHash(items[i]);
    }

    /// @dev The first item fault of the upload, or 0.
    function _verify(UploadItem[] calldata items, bytes32[] memory hashes, address uploader, address signer, bytes32 separator)
        private
        view
        returns (uint8 fault)
    {
        for (uint256 i; i < items.length; ++i) {
            fault = _check(items[i], hashes[i], uploader, signer, separator);
            if (fault != 0) return fault;
        }
    }

    /// @dev The enclave that signed Upload(account, items): items is keccak256 of each item's Payment
    /// hash followed by its ack status as a word, so a relayer cannot drop or change an ack the TEE
    /// uploaded. Reverts on a malformed signature.
    function _uploadSigner(address account, UploadItem[] calldata items, bytes32[] memory hashes, bytes32 separator, bytes calldata sig)
        private
        pure
        returns (address)
    {
        uint256 n = hashes.length;
        bytes32[] memory words = new bytes32[](2 * n);
        for (uint256 i; i < n; ++i) {
            words[2 * i] = hashes[i];
            words[2 * i + 1] = bytes32(uint256(items[i].ack));
        }
        return ChainTeeRecords.recoverBytes(ChainTeeRecords.digest(separator, ChainTeeRecords.uploadHash(account, words)), sig);
    }

    /// @dev The first reason a correct TEE would have refused this item offline, or 0.
    function _check(UploadItem calldata it, bytes32 h, address uploader, address signer, bytes32 separator) private view returns (uint8) {
        uint8 fault = _consistency(it, uploader, signer);
        return fault != 0 ? fault : _signatures(it, h, separator);
    }

    /// @dev The item's fields against each other and against the uploader.
    function _consistency(UploadItem calldata it, address uploader, address signer) private view returns (uint8) {
        uint8 kind = it.kind;
        uint8 ack = it.ack;
        if (kind > KIND_CLOSE) return FAULT_KIND;
        if (ack > ACK_FAIL) return FAULT_ACK_STATUS;
        if (it.amount == 0 || it.amount > it.stateBalance) return FAULT_AMOUNT;
        address payer = it.payer;
        address payee = it.payee;
        if (payee == address(0)) return FAULT_PAYEE;
        // The uploader's own payments are attested by the enclave that signs its uploads.
        if (payer == uploader && it.enclave != signer) return FAULT_OTHER_ENCLAVE;
        if (kind == KIND_PAY) {
            if (payer != uploader && payee != uploader) return FAULT_NOT_PARTY;
        } else {
            if (ack != ACK_NONE) return FAULT_ACK_ON_PAY_OUT;
            if (payer != uploader) return FAULT_NOT_OWN_PAY_OUT;
            if (payee == address(this)) return FAULT_PAYEE;
        }
        return 0;
    }

    /// @dev σ_att by the item's enclave over its State, σ_1 by the payer, σ_2 (if any) by the payee.
    function _signatures(UploadItem calldata it, bytes32 h, bytes32 separator) private pure returns (uint8) {
        address payer = it.payer;
        bytes32 state = ChainTeeRecords.stateHash(payer, it.counter, it.stateBalance);
        address attester = ChainTeeRecords.recoverCompact(ChainTeeRecords.digest(separator, state), it.attR, it.attVS);
        if (attester == address(0) || attester != it.enclave) return FAULT_ATTESTATION;
        address signer = ChainTeeRecords.recoverCompact(ChainTeeRecords.digest(separator, h), it.payerR, it.payerVS);
        if (signer == address(0) || signer != payer) return FAULT_PAYER_SIGNATURE;
        uint8 ack = it.ack;
        if (ack == ACK_NONE) return 0;
        address payee = it.payee;
        bytes32 ackHash = ChainTeeRecords.ackHash(h, payee, ack == ACK_WIN);
        address acker = ChainTeeRecords.recoverCompact(ChainTeeRecords.digest(separator, ackHash), it.ackR, it.ackVS);
        if (acker == address(0) || acker != payee) return FAULT_ACK_SIGNATURE;
        return 0;
    }

    /// @dev Applies one verified item: duplicate, fork, enclave binding, then its kind's rule.
    function _settle(UploadItem calldata it, bytes32 h, address uploader, Tally memory tally) private {
        address payer = it.payer;
        uint64 counter = it.counter;
        uint256 slot = _payments[payer][counter];
        uint256 tag = uint256(h) & TAG_MASK;
        bool fork = slot != 0 && (slot & TAG_MASK) != tag;
        uint8 state = fork ? _forkStates[h] : uint8(slot);
        if (fork && state == PAYMENT_NONE) {
            emit ForkProved(payer, counter, bytes32(slot & TAG_MASK), h);
            _freeze(payer, FAULT_FORK);
        }
        if (state >= PAYMENT_APPLIED) {
            _duplicate(it, h, state);
            return;
        }
        _checkEnclave(payer, it.enclave);
        uint8 next;
        uint128 payout;
        if (it.kind == KIND_PAY) next = _pay(it, h, state, uploader, tally);
        else (next, payout) = _payOut(it, h, tally);
        if (next != state) {
            if (fork) _forkStates[h] = next;
            else _payments[payer][counter] = tag | next;
        }
        if (payout != 0 && !token.transfer(it.payee, payout)) revert TokenTransferFailed();
    }

    /// @dev A payment already final: nothing moves; an ack contradicting the final state freezes the payee.
    function _duplicate(UploadItem calldata it, bytes32 h, uint8 state) private {
        if (it.kind == KIND_PAY) {
            uint8 ack = it.ack;
            // For an offline payment, applied comes only from an ack_win and failed only from an ack_fail.
            if ((state == PAYMENT_APPLIED && ack == ACK_FAIL) || (state == PAYMENT_FAILED && ack == ACK_WIN)) {
                _freezeOnce(it.payee, FAULT_CONFLICTING_ACK);
            }
        }
        emit Duplicate(it.payer, it.counter, h, state);
    }

    /// @dev The payer's faults a TEE cannot see offline: an enclave not registered, or not the bound one.
    function _checkEnclave(address payer, address enclave) private {
        if (!registered(enclave)) {
            _freezeOnce(payer, FAULT_ENCLAVE_UNREGISTERED);
            return;
        }
        address bound = enclaveOf[payer];
        if (bound == address(0)) {
            enclaveOf[payer] = enclave;
            emit Bound(payer, enclave);
        } else if (bound != enclave) {
            _freezeOnce(payer, FAULT_ENCLAVE_MISMATCH);
        }
    }

    /// @dev An offline payment (kind 0): failed on ack_fail; applied on ack_win when covered (a frozen
    /// payer's at once, up to its balance); else recorded, or voided by its payer after the window.
    function _pay(UploadItem calldata it, bytes32 h, uint8 state, address uploader, Tally memory tally) private returns (uint8) {
        address payer = it.payer;
        uint64 counter = it.counter;
        uint8 ack = it.ack;
        if (ack == ACK_FAIL) {
            if (state == PAYMENT_OWED) {
                _freezeOnce(it.payee, FAULT_CONFLICTING_ACK);
                return state;
            }
            emit Failed(payer, counter, h);
            tally.failed++;
            return PAYMENT_FAILED;
        }
        if (ack == ACK_WIN || state == PAYMENT_OWED) {
            Account storage from = _accounts[payer];
            uint128 balance = from.balance;
            uint128 amount = it.amount;
            bool frozen = from.status == STATUS_FROZEN;
            if (balance < amount && !frozen) {
                emit Recorded(payer, counter, h, true);
                tally.recorded++;
                return PAYMENT_OWED;
            }
            uint128 honored = balance < amount ? balance : amount;
            from.balance = balance - honored;
            address payee = it.payee;
            Account storage to = _accounts[payee];
            to.balance += honored;
            if (to.status == STATUS_NONE) to.status = STATUS_OPEN;
            emit Applied(payer, counter, h, payee, honored);
            if (honored < amount) emit Shortfall(payer, counter, payee, amount - honored);
            tally.applied++;
            return PAYMENT_APPLIED;
        }
        if (uploader == payer && _windowPassed(it.tGen)) {
            emit Voided(payer, counter, h);
            tally.failed++;
            return PAYMENT_VOIDED;
        }
        emit Recorded(payer, counter, h, false);
        tally.recorded++;
        return PAYMENT_RECORDED;
    }

    /// @dev A withdrawal (kind 1) or closing (kind 2), the uploader's own: paid out when the balance
    /// covers it (a closing: equals it); a closing below the balance, or any by a frozen or closed
    /// account, fails; one short on chain waits, or is voided after the window.
    function _payOut(UploadItem calldata it, bytes32 h, Tally memory tally) private returns (uint8, uint128) {
        address payer = it.payer;
        uint64 counter = it.counter;
        Account storage from = _accounts[payer];
        uint128 balance = from.balance;
        uint128 amount = it.amount;
        uint8 status = from.status;
        bool closing = it.kind == KIND_CLOSE;
        if (status == STATUS_FROZEN || status == STATUS_CLOSED || (closing && balance > amount)) {
            emit Failed(payer, counter, h);
            tally.failed++;
            return (PAYMENT_FAILED, 0);
        }
        if (balance >= amount) {
            from.balance = balance - amount;
            if (closing) from.status = STATUS_CLOSED;
            _held -= amount;
            _withdrawn += amount;
            if (closing) emit Closed(payer, counter, h, it.payee, amount);
            else emit Withdrawn(payer, counter, h, it.payee, amount);
            tally.applied++;
            return (PAYMENT_APPLIED, amount);
        }
        if (_windowPassed(it.tGen)) {
            emit Voided(payer, counter, h);
            tally.failed++;
            return (PAYMENT_VOIDED, 0);
        }
        emit Recorded(payer, counter, h, false);
        tally.recorded++;
        return (PAYMENT_RECORDED, 0);
    }

    function _windowPassed(uint64 tGen) private view returns (bool) {
        return block.timestamp > uint256(tGen) + settleWindow;
    }

    function _freeze(address account, uint8 reason) private {
        _accounts[account].status = STATUS_FROZEN;
        emit Frozen(account, reason);
    }

    function _freezeOnce(address account, uint8 reason) private {
        if (_accounts[account].status != STATUS_FROZEN) _freeze(account, reason);
    }

    // ---------------------------------------------------------------- views

    /// @notice An account's on-chain state.
    function accountOf(address account) external view returns (uint128 balance, uint64 deposits, uint8 status, address enclave) {
        Account storage a = _accounts[account];
        return (a.balance, a.deposits, a.status, enclaveOf[account]);
    }

    /// @notice The payment stored for (payer, counter): its hash with the low byte zeroed, and its state.
    function paymentOf(address payer, uint64 counter) external view returns (bytes32 payment, uint8 state) {
        uint256 slot = _payments[payer][counter];
        return (bytes32(slot & TAG_MASK), uint8(slot));
    }

    /// @notice The state of a fork's other branch, by its full payment hash.
    function forkStateOf(bytes32 payment) external view returns (uint8) {
        return _forkStates[payment];
    }

    /// @notice What the contract holds for accounts (the sum of their balances), took in and paid out.
    function totals() external view returns (uint256 held, uint256 deposited, uint256 withdrawn) {
        return (_held, uint256(_held) + _withdrawn, _withdrawn);
    }

    /// @notice The EIP-712 domain separator.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparator();
    }

    /// @notice The EIP-712 domain (EIP-5267).
    function eip712Domain()
        external
        view
        returns (bytes1 fields, string memory name, string memory version, uint256 chainId, address verifyingContract, bytes32 salt, uint256[] memory extensions)
    {
        return (hex"0f", "Tally chain-tee", "1", block.chainid, address(this), bytes32(0), new uint256[](0));
    }

    function _domainSeparator() private view returns (bytes32) {
        return block.chainid == _cachedChainId ? _cachedSeparator : ChainTeeRecords.separator(address(this));
    }
}
