// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title FlatChargeBaseline
/// @notice Benchmark baseline only (bench/settlement_gas.py): a flat per-session charge in the
/// style of the original Electra contracts' `chargeVehicle`. A vehicle's prepaid balance pays a
/// fixed fee to a station, one call per session, with no signature, no metering and no record.
contract FlatChargeBaseline {
    uint256 public immutable flatFee;
    uint256 public chargeCount;
    mapping(uint256 vehicleId => uint256) public vehicleBalance;
    mapping(uint256 stationId => uint256) public stationEarnings;

    error FlatChargeBaselineInsufficientBalance(uint256 vehicleId);

    event VehicleFunded(uint256 indexed vehicleId, uint256 amount);
    event VehicleCharged(uint256 indexed vehicleId, uint256 indexed stationId, uint256 amount);

    constructor(uint256 flatFee_) {
        flatFee = flatFee_;
    }

    /// @notice Prepays a vehicle's balance in wei.
    function fund(uint256 vehicleId) external payable {
        vehicleBalance[vehicleId] += msg.value;
        emit VehicleFunded(vehicleId, msg.value);
    }

    /// @notice Charges the flat fee to a vehicle for a session at a station.
    function chargeVehicle(uint256 vehicleId, uint256 stationId) external {
        uint256 balance = vehicleBalance[vehicleId];
        if (balance < flatFee) revert FlatChargeBaselineInsufficientBalance(vehicleId);
        vehicleBalance[vehicleId] = balance - flatFee;
        stationEarnings[stationId] += flatFee;
        chargeCount += 1;
        emit VehicleCharged(vehicleId, stationId, flatFee);
    }
}
