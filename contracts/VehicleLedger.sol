// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {IDeviceObserver} from "./IDeviceObserver.sol";

/// @title VehicleLedger
/// @notice Vehicles keyed by the hash of their VIN, each with an owner and a device address (the
/// vehicle's own key, which later signs charge authorizations).
/// @dev A vehicle onboards itself without gas: its device key signs an EIP-712
/// `VehicleOnboarding` message and anyone may relay it. An owner may also register directly.
contract VehicleLedger is Ownable, EIP712, Nonces {
    struct Vehicle {
        bytes32 vinHash;
        address owner;
        address device;
        uint40 registeredAt;
        bool deactivated; // by its owner
        bool suspended; // by governance
    }

    /// @notice What the vehicle's device key signs.
    struct VehicleOnboarding {
        bytes32 vinHash;
        address owner;
        address device;
        uint256 nonce;
        uint256 deadline;
    }

    bytes32 private constant ONBOARDING_TYPEHASH =
        keccak256("VehicleOnboarding(bytes32 vinHash,address owner,address device,uint256 nonce,uint256 deadline)");

    uint256 private _lastVehicleId;
    mapping(uint256 vehicleId => Vehicle) private _vehicles;
    mapping(bytes32 vinHash => uint256 vehicleId) private _byVin;
    mapping(address device => uint256 vehicleId) private _byDevice;
    // Told of every device change (PaymentHub, which caches devices). Set once, by the deployer
    // or governance; governance may clear it but nobody may set it again, so an observer that
    // sees itself here has been told of every change since it was set.
    address private _deviceObserver;
    bool private _deviceObserverUsed;
    address private immutable _deployer;

    error VehicleLedgerInvalidVinHash();
    error VehicleLedgerZeroAddress();
    error VehicleLedgerAlreadyRegistered(bytes32 vinHash, uint256 vehicleId);
    error VehicleLedgerDeviceInUse(address device, uint256 vehicleId);
    error VehicleLedgerExpiredSignature(uint256 deadline);
    error VehicleLedgerInvalidSignature(address device);
    error VehicleLedgerUnknownVehicle(uint256 vehicleId);
    error VehicleLedgerNotVehicleOwner(uint256 vehicleId, address account);
    error VehicleLedgerDeviceObserverFixed(address current);
    error VehicleLedgerUnauthorizedAccount(address account);

    event VehicleRegistered(
        uint256 indexed vehicleId, bytes32 indexed vinHash, address indexed owner, address device, bool relayed
    );
    event VehicleDeviceChanged(uint256 indexed vehicleId, address previousDevice, address newDevice);
    event VehicleDeactivated(uint256 indexed vehicleId);
    event VehicleActivated(uint256 indexed vehicleId);
    event VehicleSuspensionChanged(uint256 indexed vehicleId, bool suspended);
    event DeviceObserverChanged(address previousObserver, address newObserver);

    constructor(address governance) Ownable(governance) EIP712("VehicleLedger", "1") {
        _deployer = msg.sender;
    }

    /// @notice Registers a vehicle owned by the caller.
    /// @return vehicleId The new vehicle id (ids start at 1).
    function register(bytes32 vinHash, address device) external returns (uint256 vehicleId) {
        return _register(vinHash, msg.sender, device, false);
    }

    /// @notice Registers a vehicle from a message signed by its device key; anyone may relay it.
    /// @param o The onboarding message. `o.nonce` must equal `nonces(o.device)`.
    /// @param signature The device's EIP-712 signature (ECDSA, low-s; or ERC-1271 for contract devices).
    function onboard(VehicleOnboarding calldata o, bytes calldata signature) external returns (uint256 vehicleId) {
        if (block.timestamp > o.deadline) revert VehicleLedgerExpiredSignature(o.deadline);
        if (o.device == address(0)) revert VehicleLedgerZeroAddress();
        bytes32 digest = _hashTypedDataV4(
            keccak256(abi.encode(ONBOARDING_TYPEHASH, o.vinHash, o.owner, o.device, o.nonce, o.deadline))
        );
        if (!SignatureChecker.isValidSignatureNow(o.device, digest, signature)) {
            revert VehicleLedgerInvalidSignature(o.device);
        }
        _useCheckedNonce(o.device, o.nonce);
        return _register(o.vinHash, o.owner, o.device, true);
    }

    /// @notice Rotates the vehicle's device key. Vehicle owner only.
    function setDevice(uint256 vehicleId, address newDevice) external {
        Vehicle storage v = _checkVehicleOwner(vehicleId);
        if (newDevice == address(0)) revert VehicleLedgerZeroAddress();
        uint256 other = _byDevice[newDevice];
        if (other != 0) revert VehicleLedgerDeviceInUse(newDevice, other);
        address previous = v.device;
        delete _byDevice[previous];
        _byDevice[newDevice] = vehicleId;
        v.device = newDevice;
        emit VehicleDeviceChanged(vehicleId, previous, newDevice);
        address observer = _deviceObserver;
        if (observer != address(0)) IDeviceObserver(observer).vehicleDeviceChanged(vehicleId, newDevice);
    }

    /// @notice Sets the contract told of every device change. The deployer or governance may set
    /// it once; afterwards governance may only clear it (address zero), for good.
    function setDeviceObserver(address observer) external {
        if (msg.sender != owner() && msg.sender != _deployer) revert VehicleLedgerUnauthorizedAccount(msg.sender);
        if (observer != address(0)) {
            if (_deviceObserverUsed) revert VehicleLedgerDeviceObserverFixed(_deviceObserver);
            _deviceObserverUsed = true;
        } else if (msg.sender != owner()) {
            revert VehicleLedgerUnauthorizedAccount(msg.sender);
        }
        emit DeviceObserverChanged(_deviceObserver, observer);
        _deviceObserver = observer;
    }

    /// @notice Stops the vehicle from starting sessions. Vehicle owner only.
    function deactivate(uint256 vehicleId) external {
        _checkVehicleOwner(vehicleId).deactivated = true;
        emit VehicleDeactivated(vehicleId);
    }

    /// @notice Lets a deactivated vehicle start sessions again. Vehicle owner only.
    function activate(uint256 vehicleId) external {
        _checkVehicleOwner(vehicleId).deactivated = false;
        emit VehicleActivated(vehicleId);
    }

    /// @notice Suspends or reinstates a vehicle. Governance only.
    function setSuspended(uint256 vehicleId, bool suspended) external onlyOwner {
        _requireVehicle(vehicleId).suspended = suspended;
        emit VehicleSuspensionChanged(vehicleId, suspended);
    }

    /// @notice The stored record of a vehicle.
    function vehicle(uint256 vehicleId) external view returns (Vehicle memory) {
        return _requireVehicle(vehicleId);
    }

    /// @notice Whether the vehicle may start sessions.
    function isActive(uint256 vehicleId) external view returns (bool) {
        Vehicle storage v = _requireVehicle(vehicleId);
        return !v.deactivated && !v.suspended;
    }

    /// @notice The vehicle id for a VIN hash, or 0.
    function vehicleIdOfVin(bytes32 vinHash) external view returns (uint256) {
        return _byVin[vinHash];
    }

    /// @notice The vehicle id bound to a device address, or 0.
    function vehicleIdOfDevice(address device) external view returns (uint256) {
        return _byDevice[device];
    }

    /// @notice The contract told of every device change, or zero.
    function deviceObserver() external view returns (address) {
        return _deviceObserver;
    }

    /// @notice Number of vehicles ever registered; ids run from 1 to this.
    function totalVehicles() external view returns (uint256) {
        return _lastVehicleId;
    }

    /// @notice The EIP-712 domain separator for onboarding signatures.
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    function _register(bytes32 vinHash, address owner_, address device, bool relayed)
        private
        returns (uint256 vehicleId)
    {
        if (vinHash == bytes32(0)) revert VehicleLedgerInvalidVinHash();
        if (owner_ == address(0) || device == address(0)) revert VehicleLedgerZeroAddress();
        uint256 existing = _byVin[vinHash];
        if (existing != 0) revert VehicleLedgerAlreadyRegistered(vinHash, existing);
        uint256 other = _byDevice[device];
        if (other != 0) revert VehicleLedgerDeviceInUse(device, other);
        vehicleId = ++_lastVehicleId;
        _byVin[vinHash] = vehicleId;
        _byDevice[device] = vehicleId;
        _vehicles[vehicleId] = Vehicle({
            vinHash: vinHash,
            owner: owner_,
            device: device,
            registeredAt: uint40(block.timestamp),
            deactivated: false,
            suspended: false
        });
        emit VehicleRegistered(vehicleId, vinHash, owner_, device, relayed);
    }

    function _requireVehicle(uint256 vehicleId) private view returns (Vehicle storage v) {
        v = _vehicles[vehicleId];
        if (v.owner == address(0)) revert VehicleLedgerUnknownVehicle(vehicleId);
    }

    function _checkVehicleOwner(uint256 vehicleId) private view returns (Vehicle storage v) {
        v = _requireVehicle(vehicleId);
        if (v.owner != msg.sender) revert VehicleLedgerNotVehicleOwner(vehicleId, msg.sender);
    }
}
