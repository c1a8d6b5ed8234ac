// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title TallyToken: the node's currency as a plain ERC-20.
/// @notice Decimals are the currency's minor digits. The central bank (`minter`) creates tokens,
/// and so may each intermediary it names (`minters`), each against its reserve at the central bank;
/// nothing ever destroys them, so `totalSupply` is exactly what was minted. Every balance change checks before it writes; no arithmetic is unchecked.
contract TallyToken {
    /// @notice The token's name, e.g. "Tally euro".
    string public name;
    /// @notice The token's symbol, e.g. "EUR".
    string public symbol;
    /// @notice The currency's minor digits (2 for cents).
    uint8 public immutable decimals;
    /// @notice The central bank: mints, and names the intermediaries that may mint.
    address public immutable minter;
    /// @notice Intermediaries the central bank allowed to mint (and has not stopped).
    mapping(address => bool) public minters;
    /// @notice Everything minted so far.
    uint256 public totalSupply;
    /// @notice Tokens held by each address.
    mapping(address => uint256) public balanceOf;
    /// @notice What `spender` may still take from `owner` with transferFrom.
    mapping(address => mapping(address => uint256)) public allowance;

    /// @notice Tokens moved (from the zero address when minted).
    event Transfer(address indexed from, address indexed to, uint256 value);
    /// @notice An allowance set by its owner.
    event Approval(address indexed owner, address indexed spender, uint256 value);
    /// @notice Tokens created by `by` (the central bank or an intermediary): who answers for them in its books.
    event Minted(address indexed by, address indexed to, uint256 value);
    /// @notice An intermediary allowed to mint, or stopped.
    event MinterSet(address indexed intermediary, bool allowed);

    /// @notice Only the minter may mint.
    error NotMinter(address caller);
    /// @notice The sender holds less than the amount.
    error InsufficientBalance(address from, uint256 balance, uint256 needed);
    /// @notice The spender's allowance is less than the amount.
    error InsufficientAllowance(address owner, address spender, uint256 allowance, uint256 needed);
    /// @notice Tokens may not be sent to, minted to or approved for the zero address.
    error ZeroAddress();

    /// @param name_ the token's name
    /// @param symbol_ the token's symbol
    /// @param decimals_ the currency's minor digits
    /// @param minter_ the central bank, the only account allowed to mint
    constructor(string memory name_, string memory symbol_, uint8 decimals_, address minter_) {
        if (minter_ == address(0)) revert ZeroAddress();
        name = name_;
        symbol = symbol_;
        decimals = decimals_;
        minter = minter_;
    }

    /// @notice Allows or stops an intermediary's minting; the central bank only.
    function setMinter(address intermediary, bool allowed) external {
        if (msg.sender != minter) revert NotMinter(msg.sender);
        if (intermediary == address(0)) revert ZeroAddress();
        minters[intermediary] = allowed;
        emit MinterSet(intermediary, allowed);
    }

    /// @notice Creates `amount` tokens for `to`; the central bank or an intermediary it allowed.
    function mint(address to, uint256 amount) external {
        if (msg.sender != minter && !minters[msg.sender]) revert NotMinter(msg.sender);
        if (to == address(0)) revert ZeroAddress();
        totalSupply += amount;
        // Cannot overflow: no balance exceeds totalSupply, which did not overflow just above.
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
        emit Minted(msg.sender, to, amount);
    }

    /// @notice Sends `amount` of the caller's tokens to `to`.
    function transfer(address to, uint256 amount) external returns (bool) {
        _move(msg.sender, to, amount);
        return true;
    }

    /// @notice Lets `spender` take up to `amount` of the caller's tokens (the maximum uint256: no limit).
    function approve(address spender, uint256 amount) external returns (bool) {
        if (spender == address(0)) revert ZeroAddress();
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
        return true;
    }

    /// @notice Sends `amount` of `from`'s tokens to `to` within the caller's allowance.
    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            if (allowed < amount) revert InsufficientAllowance(from, msg.sender, allowed, amount);
            allowance[from][msg.sender] = allowed - amount;
        }
        _move(from, to, amount);
        return true;
    }

    function _move(address from, address to, uint256 amount) private {
        if (to == address(0)) revert ZeroAddress();
        uint256 held = balanceOf[from];
        if (held < amount) revert InsufficientBalance(from, held, amount);
        balanceOf[from] = held - amount;
        balanceOf[to] += amount;
        emit Transfer(from, to, amount);
    }
}
