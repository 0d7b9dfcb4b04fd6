// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ICommissionHook} from "../ICommissionHook.sol";

/// @title TestCommissionHook
/// @notice For tests only: a commission per charger, set by anyone; chargers without one pay the
/// protocol fee. `broken` makes every call revert, to show that settlement carries on.
contract TestCommissionHook is ICommissionHook {
    mapping(uint256 chargerId => uint256) private _bps;
    mapping(uint256 chargerId => bool) private _set;
    bool public broken;

    error TestCommissionHookBroken();

    function setCommission(uint256 chargerId, uint256 bps) external {
        _bps[chargerId] = bps;
        _set[chargerId] = true;
    }

    function setBroken(bool broken_) external {
        broken = broken_;
    }

    function commissionBps(uint256 chargerId, address, address, uint256 protocolFeeBps)
        external
        view
        returns (uint256)
    {
        if (broken) revert TestCommissionHookBroken();
        return _set[chargerId] ? _bps[chargerId] : protocolFeeBps;
    }
}
