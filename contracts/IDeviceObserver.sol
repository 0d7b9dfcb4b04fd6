// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IDeviceObserver
/// @notice Told by VehicleLedger, in the same transaction, whenever a vehicle's device changes, so
/// that a contract may keep its own copy of vehicles' devices (PaymentHub caches them to save a
/// ledger lookup per settled session) without ever holding a rotated-out device.
/// @dev The ledger calls it from `setDevice`; a revert there reverts the rotation, so an observer
/// must not revert for any vehicle id or device.
interface IDeviceObserver {
    /// @notice `vehicleId`'s device is now `device`.
    function vehicleDeviceChanged(uint256 vehicleId, address device) external;
}
