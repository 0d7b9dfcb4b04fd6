// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title ElectraTimelock
/// @notice OpenZeppelin's TimelockController under Electra's name. It owns every parameter of the
/// network and holds the treasury; the governor is its only proposer and canceller.
contract ElectraTimelock is TimelockController {
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors, address admin)
        TimelockController(minDelay, proposers, executors, admin)
    {}
}
