// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @title DirectChargeBaseline
/// @notice Benchmark baseline only (bench/settlement_gas.py): the plain way to pay for a session,
/// one transaction per session. The payer has approved this contract; each call stores the
/// session's record and moves the tokens from the payer to the charger's owner with transferFrom.
contract DirectChargeBaseline {
    using SafeERC20 for IERC20;

    struct SessionRecord {
        bytes32 recordHash;
        uint64 vehicleId;
        uint64 chargerId;
        uint128 amount;
    }

    mapping(uint256 sessionId => SessionRecord) private _sessions;

    error DirectChargeBaselineAlreadyCharged(uint256 sessionId);

    event SessionCharged(uint256 indexed sessionId, address indexed payee, uint256 amount);

    /// @notice Records a session and pays its amount from `payer` to `payee`.
    function charge(
        IERC20 token,
        address payer,
        address payee,
        uint256 sessionId,
        uint64 vehicleId,
        uint64 chargerId,
        uint128 amount,
        bytes32 recordHash
    ) external {
        if (_sessions[sessionId].recordHash != 0) revert DirectChargeBaselineAlreadyCharged(sessionId);
        _sessions[sessionId] = SessionRecord(recordHash, vehicleId, chargerId, amount);
        emit SessionCharged(sessionId, payee, amount);
        token.safeTransferFrom(payer, payee, amount);
    }

    function session(uint256 sessionId) external view returns (SessionRecord memory) {
        return _sessions[sessionId];
    }
}
