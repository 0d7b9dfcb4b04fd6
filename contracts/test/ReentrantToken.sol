// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title ReentrantToken
/// @notice For tests only: a malicious ERC-20. Armed, the next move of its tokens (transfer,
/// transferFrom, mint) calls `target` with `callData` right after the balances changed, from the
/// token's own address, and keeps the outcome instead of reverting, so a test can read what the
/// victim answered. It also acts as an account (`execute`), so that it can hold positions of its
/// own in the contract it attacks: the callback then comes from the position's holder.
contract ReentrantToken is ERC20 {
    address public target;
    bytes public callData;
    bool public armed;
    uint256 public reentries;
    bool public lastSucceeded;
    bytes public lastReturn;

    constructor() ERC20("Reentrant", "REENTER") {}

    /// @notice Anyone may mint: a test token (and RewardsDistributor's reward token interface).
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice The next token move calls `target_` with `data`, once.
    function arm(address target_, bytes calldata data) external {
        target = target_;
        callData = data;
        armed = true;
    }

    /// @notice Calls `to` with `data` as this token's address; bubbles up a revert.
    function execute(address to, bytes calldata data) external returns (bytes memory result) {
        bool ok;
        (ok, result) = to.call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(result, 0x20), mload(result))
            }
        }
    }

    /// @notice Lets this token receive ERC-721s (a charger NFT to stake on).
    function onERC721Received(address, address, uint256, bytes calldata) external pure returns (bytes4) {
        return this.onERC721Received.selector;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (armed) {
            armed = false;
            reentries += 1;
            (bool ok, bytes memory ret) = target.call(callData);
            lastSucceeded = ok;
            lastReturn = ret;
        }
    }
}
