// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title TestSmartWallet
/// @notice For tests only: a minimal contract wallet. It accepts (ERC-1271) what its signer key
/// signs, and the signer can make it call other contracts.
contract TestSmartWallet is IERC1271 {
    address public immutable signer;

    error TestSmartWalletNotSigner(address account);

    constructor(address signer_) {
        signer = signer_;
    }

    /// @notice ERC-1271: valid if `signer` signed `hash` (65-byte ECDSA).
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(hash, signature);
        return err == ECDSA.RecoverError.NoError && recovered == signer ? IERC1271.isValidSignature.selector : bytes4(0);
    }

    /// @notice Calls `target` with `data` as this wallet. Signer only; bubbles up reverts.
    function execute(address target, bytes calldata data) external returns (bytes memory result) {
        if (msg.sender != signer) revert TestSmartWalletNotSigner(msg.sender);
        bool ok;
        (ok, result) = target.call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(result, 0x20), mload(result))
            }
        }
    }
}
