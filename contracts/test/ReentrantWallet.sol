// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title ReentrantWallet
/// @notice For tests only: a malicious ERC-1271 contract wallet. Asked whether it signed, it first
/// tries to call `target` with `callData` (to re-enter the contract that asks), ignores the outcome
/// and says yes to everything. Its `isValidSignature` is deliberately not `view`: a caller that
/// uses STATICCALL makes that attempt fail, one that uses CALL would let it through.
contract ReentrantWallet {
    address public target;
    bytes public callData;

    /// @notice What the wallet tries when asked; and it acts as an account (`execute`).
    function arm(address target_, bytes calldata data) external {
        target = target_;
        callData = data;
    }

    /// @notice Calls `to` with `data` as this wallet; bubbles up a revert.
    function execute(address to, bytes calldata data) external returns (bytes memory result) {
        bool ok;
        (ok, result) = to.call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(result, 0x20), mload(result))
            }
        }
    }

    /// @notice ERC-1271, maliciously: re-enters, then accepts any signature.
    function isValidSignature(bytes32, bytes calldata) external returns (bytes4) {
        if (target != address(0)) {
            (bool ok,) = target.call(callData);
            ok; // the outcome is ignored: the wallet says yes either way
        }
        return 0x1626ba7e;
    }
}
