// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ICommissionHook} from "./ICommissionHook.sol";
import {IDeviceObserver} from "./IDeviceObserver.sol";
import {VehicleLedger} from "./VehicleLedger.sol";

/// @title PaymentHub
/// @notice Machine-to-machine payment for charging sessions. Anyone deposits an allowed ERC-20
/// (ELC, or the fiat-backed stablecoin) for a vehicle; the vehicle's device key (or its owner)
/// signs an EIP-712 `ChargeAuthorization` bounding what one session at one charger may cost; the
/// platform's settler settles many sessions in one transaction. Revenue goes to whoever holds the
/// charger's StationRegistry NFT at settlement, netted per holder within a batch, into an internal
/// balance the holder withdraws. A protocol fee (or a hook-provided commission) accrues to the
/// treasury.
/// @dev Settlement is what the platform pays gas for on every session, so its common path is
/// written for gas (docs/payments.md has the budget). Per session it reads and rewrites one packed
/// slot (the vehicle's balance, device cache and last nonce in the asset), sets one bit of a
/// session bitmap held in memory (256 sessions per storage slot) and recovers one signature, which
/// it compares with the vehicle's device as cached in that slot, which VehicleLedger keeps current
/// (`_signedByDevice`). Chargers' holders are looked up once per batch and their credits added up
/// in transient storage, so each holder costs one storage write per batch.
contract PaymentHub is Ownable, Pausable, ReentrancyGuardTransient, EIP712, IDeviceObserver {
    using SafeERC20 for IERC20;

    /// @notice One session to settle, decoded from the packed batch (layout in `settleBatch`).
    struct Entry {
        uint256 sessionId; // assigned by the platform's session store; settles at most once
        uint256 vehicleId; // VehicleLedger id
        uint256 chargerId; // StationRegistry token id
        uint256 nonce; // signed: must be above the last nonce the vehicle used in this asset
        uint256 expiry; // signed: last unix second at which the authorization may be settled
        uint256 maxAmount; // signed bound, in the asset's base units
        uint256 amount; // the session's final price in base units, at most maxAmount
        bytes32 recordHash; // the session's record in the platform's session log
        uint256 signatureOffset; // where the signature starts in calldata
        uint256 signatureLength;
    }

    /// @notice The DAO's ceilings on the tariffs hosts may set in one asset, in its base units.
    /// All zero: governance has published none (the platform then applies its defaults).
    /// Tariffs are set and applied off-chain; the vehicle's signed maximum bounds what a session
    /// can cost on-chain.
    struct TariffBounds {
        uint128 maxEnergyPricePerWh;
        uint128 maxTimePricePerHour;
        uint128 maxIdlePricePerHour;
        uint128 maxSessionFee;
    }

    /// @notice Why a session was not settled (reason code of `SettlementRejected`).
    enum Rejection {
        None,
        AlreadySettled,
        Expired,
        OverLimit,
        NonceUsed,
        InvalidSignature,
        InsufficientBalance,
        UnknownCharger,
        NonceOutOfRange
    }

    /// @dev What a batch carries from entry to entry. The assembly of the settlement steps reads and
    /// writes the first six fields at the B_* offsets below: keep the order.
    struct Batch {
        address asset; // B_ASSET
        bytes32 domainSeparator; // B_DOMAIN
        uint256 wordIndex; // B_WORD_INDEX: which session bitmap word is held in memory
        uint256 word; // B_WORD
        uint256 wordDirty; // B_WORD_DIRTY: 1 if `word` differs from storage
        uint256 settled; // B_SETTLED
        uint256 cacheOn; // B_CACHE_ON: 1 if the ledger tells this hub of device changes
        uint256 chargerCount;
        uint256[] chargers; // chargers with a settled session in this batch, in order of first one
        address[] holders; // their NFT holders, looked up once per batch
        uint256 feeBps;
        address hook;
    }

    uint256 private constant B_ASSET = 0x00;
    uint256 private constant B_DOMAIN = 0x20;
    uint256 private constant B_WORD_INDEX = 0x40;
    uint256 private constant B_WORD = 0x60;
    uint256 private constant B_WORD_DIRTY = 0x80;
    uint256 private constant B_SETTLED = 0xa0;
    uint256 private constant B_CACHE_ON = 0xc0;

    /// @notice Upper bound of the protocol fee and of any commission: 10 %.
    uint256 public constant MAX_FEE_BPS = 1_000;
    /// @notice Gas a commission hook may use per charger and batch.
    uint256 public constant COMMISSION_HOOK_GAS = 30_000;
    /// @notice Gas an ERC-1271 wallet may use to check one signature.
    uint256 public constant ERC1271_GAS = 100_000;
    /// @notice Bytes of a packed entry before its signature.
    uint256 public constant ENTRY_HEADER_BYTES = 98;
    uint256 private constant BPS = 10_000;
    uint256 private constant SLOT_IN_USE = 1 << 255;
    // A vehicle's slot per asset: balance (96 bits) | device cache (128 bits) | last nonce (32 bits).
    // The device cache is the low 128 bits of the vehicle's device address, or zero; see
    // `_signedByDevice`.
    uint256 private constant BALANCE_MASK = 0xffffffffffffffffffffffff; // 96 bits
    uint256 private constant CACHE_SHIFT = 96;
    uint256 private constant CACHE_MASK = 0xffffffffffffffffffffffffffffffff000000000000000000000000;
    uint256 private constant MASK_128 = 0xffffffffffffffffffffffffffffffff;
    uint256 private constant NONCE_SHIFT = 224;
    uint256 private constant MAX_NONCE = 0xffffffff;
    /// @notice Most assets the hub will ever have allowed (a device change walks them all).
    uint256 public constant MAX_ASSETS = 16;
    uint256 private constant MASK_64 = 0xffffffffffffffff;
    uint256 private constant MASK_96 = 0xffffffffffffffffffffffff;
    // Transient amounts (a charger's gross, a holder's net) below an index in the high 64 bits.
    uint256 private constant AMOUNT_MASK = 0xffffffffffffffffffffffffffffffffffffffffffffffff; // 192 bits
    // secp256k1n / 2: a larger s is the malleable twin of a valid signature and is refused.
    uint256 private constant HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;
    // `_settleEntry`'s answer when the signature is not the device's: the owner path decides.
    uint256 private constant NOT_BY_DEVICE = 255;
    // Transient slots of a batch: a prefix in the high bits, a charger id (< 2^64) or a holder's
    // address below. A charger's slot holds (its index in the batch + 1) << 192 | its gross amount;
    // a holder's slot (its index + 1) << 192 | its net amount. Both are zeroed when the batch closes.
    uint256 private constant CHARGER_PREFIX =
        uint256(keccak256("electra.PaymentHub.charger")) & ~uint256(type(uint64).max);
    uint256 private constant HOLDER_PREFIX =
        uint256(keccak256("electra.PaymentHub.holder")) & ~uint256(type(uint160).max);

    /// @dev keccak256("ChargeAuthorization(uint256 vehicleId,uint256 chargerId,address asset,uint256 maxAmount,
    /// uint64 expiry,uint64 nonce)"), written out so that assembly can use it; tests/test_payment_hub.py
    /// checks the contract's digest against an independent EIP-712 encoder.
    bytes32 private constant CHARGE_AUTHORIZATION_TYPEHASH =
        0x89bbc21931ac1da90680212b80b6cbc347d91c6e786396f524067bd7bfb5b07d;
    uint256 private constant VEHICLE_ID_OF_DEVICE = 0x7a6b0fc8; // VehicleLedger.vehicleIdOfDevice(address)
    uint256 private constant DEVICE_OBSERVER = 0x601e74d5; // VehicleLedger.deviceObserver()
    uint256 private constant OWNER_OF = 0x6352211e; // IERC721.ownerOf(uint256)

    VehicleLedger private immutable _vehicles;
    address private immutable _stations;

    // Read together at the start of every batch: one slot.
    uint16 private _protocolFeeBps;
    address private _commissionHook;
    address private _treasury;
    address private _guardian;
    mapping(address account => bool) private _settlers;
    mapping(address asset => bool) private _allowedAssets;
    // Every asset ever allowed, in order: the assets a vehicle can have a slot in.
    address[] private _assets;
    mapping(address asset => bool) private _listedAssets;
    // balance | device cache | last nonce, packed as BALANCE_MASK, CACHE_MASK and NONCE_SHIFT say
    mapping(uint256 vehicleId => mapping(address asset => uint256)) private _accounts;
    mapping(uint256 wordIndex => uint256) private _settledSessions;
    // Earnings and fees carry SLOT_IN_USE once written, so that paying them out leaves the slot
    // non-zero and the next credit costs 2,900 gas instead of 20,000.
    mapping(address payee => mapping(address asset => uint256)) private _earnings;
    mapping(address asset => uint256) private _fees;
    mapping(address asset => TariffBounds) private _tariffBounds;

    error PaymentHubZeroAddress();
    error PaymentHubZeroAmount();
    error PaymentHubAssetNotAllowed(address asset);
    error PaymentHubUnknownVehicle(uint256 vehicleId);
    error PaymentHubNotVehicleOwner(uint256 vehicleId, address account);
    error PaymentHubBalanceOverflow(uint256 vehicleId, address asset);
    error PaymentHubInsufficientBalance(uint256 vehicleId, address asset, uint256 balance, uint256 needed);
    error PaymentHubNothingToWithdraw(address account, address asset);
    error PaymentHubUnauthorizedSettler(address account);
    error PaymentHubUnauthorizedGuardian(address account);
    error PaymentHubFeeTooHigh(uint256 feeBps, uint256 maxFeeBps);
    error PaymentHubSessionAlreadySettled(uint256 sessionId);
    error PaymentHubAuthorizationExpired(uint256 sessionId, uint256 expiry);
    error PaymentHubAmountOverLimit(uint256 sessionId, uint256 amount, uint256 maxAmount);
    error PaymentHubNonceUsed(uint256 sessionId, uint256 nonce, uint256 lastNonce);
    error PaymentHubNonceOutOfRange(uint256 sessionId, uint256 nonce, uint256 maxNonce);
    error PaymentHubInvalidSignature(uint256 sessionId, uint256 vehicleId);
    error PaymentHubUnknownCharger(uint256 sessionId, uint256 chargerId);
    error PaymentHubLookupFailed(address target);
    error PaymentHubNotEnoughGas();
    error PaymentHubMalformedEntries(uint256 offset);
    error PaymentHubUnauthorizedLedger(address account);
    error PaymentHubTooManyAssets(uint256 maxAssets);

    event Deposited(uint256 indexed vehicleId, address indexed asset, address indexed from, uint256 amount);
    event Withdrawn(uint256 indexed vehicleId, address indexed asset, address indexed to, uint256 amount);
    event BatchSettled(address indexed asset, uint256 settled, uint256 rejected, uint256 grossAmount, uint256 feeAmount);
    event SettlementRejected(uint256 indexed sessionId, Rejection reason);
    event EarningsCredited(address indexed payee, address indexed asset, uint256 amount);
    event EarningsWithdrawn(address indexed payee, address indexed asset, address indexed to, uint256 amount);
    event FeesSwept(address indexed asset, address indexed treasury, uint256 amount);
    event ProtocolFeeChanged(uint256 previousBps, uint256 newBps);
    event AssetAllowanceChanged(address indexed asset, bool allowed);
    event CommissionHookChanged(address previousHook, address newHook);
    event GuardianChanged(address previousGuardian, address newGuardian);
    event SettlerChanged(address indexed account, bool allowed);
    event TreasuryChanged(address previousTreasury, address newTreasury);
    event TariffBoundsChanged(address indexed asset, TariffBounds bounds);

    modifier onlySettler() {
        if (!_settlers[msg.sender]) revert PaymentHubUnauthorizedSettler(msg.sender);
        _;
    }

    /// @param governance The timelock: owns every parameter and can unpause.
    /// @param treasury_ Receives the protocol fees (the timelock in Electra's deployment).
    /// @param vehicles The VehicleLedger whose ids, devices and owners authorizations refer to.
    /// @param stations The StationRegistry whose NFT holders are paid.
    /// @param settler The platform's operator account, allowed to settle (zero: none yet).
    /// @param guardian_ May pause (zero: none yet).
    /// @param protocolFeeBps_ The initial protocol fee, at most MAX_FEE_BPS.
    /// @param assets The initially allowed assets.
    constructor(
        address governance,
        address treasury_,
        VehicleLedger vehicles,
        address stations,
        address settler,
        address guardian_,
        uint256 protocolFeeBps_,
        address[] memory assets
    ) Ownable(governance) EIP712("PaymentHub", "1") {
        if (treasury_ == address(0) || address(vehicles) == address(0) || stations == address(0)) {
            revert PaymentHubZeroAddress();
        }
        _vehicles = vehicles;
        _stations = stations;
        _setTreasury(treasury_);
        _setProtocolFee(protocolFeeBps_);
        if (settler != address(0)) _setSettler(settler, true);
        if (guardian_ != address(0)) {
            _guardian = guardian_;
            emit GuardianChanged(address(0), guardian_);
        }
        for (uint256 i = 0; i < assets.length; ++i) {
            _setAssetAllowed(assets[i], true);
        }
    }

    // ---------------------------------------------------------------- deposits and withdrawals

    /// @notice Deposits `amount` of `asset` for a vehicle. Anyone may deposit for any vehicle;
    /// the caller must have approved this contract.
    function deposit(uint256 vehicleId, address asset, uint256 amount) external whenNotPaused nonReentrant {
        _deposit(vehicleId, asset, amount);
    }

    /// @notice Deposits with an EIP-2612 permit instead of a prior approval.
    /// @dev A failing permit is ignored, so a permit someone front-ran still lets the deposit go
    /// through on the allowance it set; without an allowance the transfer then reverts.
    function depositWithPermit(
        uint256 vehicleId,
        address asset,
        uint256 amount,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external whenNotPaused nonReentrant {
        try IERC20Permit(asset).permit(msg.sender, address(this), amount, deadline, v, r, s) {} catch {}
        _deposit(vehicleId, asset, amount);
    }

    /// @notice Withdraws unused balance of a vehicle. Only the vehicle's owner (per VehicleLedger);
    /// works for an asset that is no longer allowed, so funds are never trapped.
    function withdraw(uint256 vehicleId, address asset, uint256 amount, address to) external whenNotPaused nonReentrant {
        if (to == address(0)) revert PaymentHubZeroAddress();
        if (amount == 0) revert PaymentHubZeroAmount();
        address owner_ = _vehicles.vehicle(vehicleId).owner;
        if (msg.sender != owner_) revert PaymentHubNotVehicleOwner(vehicleId, msg.sender);
        uint256 acct = _accounts[vehicleId][asset];
        uint256 balance = acct & BALANCE_MASK;
        if (amount > balance) revert PaymentHubInsufficientBalance(vehicleId, asset, balance, amount);
        _accounts[vehicleId][asset] = acct - amount;
        emit Withdrawn(vehicleId, asset, to, amount);
        IERC20(asset).safeTransfer(to, amount);
    }

    /// @notice Pays the caller's whole earnings in `asset` to `to`.
    function withdrawEarnings(address asset, address to) external whenNotPaused nonReentrant returns (uint256 amount) {
        if (to == address(0)) revert PaymentHubZeroAddress();
        amount = _earnings[msg.sender][asset] & ~SLOT_IN_USE;
        if (amount == 0) revert PaymentHubNothingToWithdraw(msg.sender, asset);
        _earnings[msg.sender][asset] = SLOT_IN_USE;
        emit EarningsWithdrawn(msg.sender, asset, to, amount);
        IERC20(asset).safeTransfer(to, amount);
    }

    /// @notice Sends the fees accrued in `asset` to the treasury. Anyone may call it.
    function sweepFees(address asset) external whenNotPaused nonReentrant returns (uint256 amount) {
        amount = _fees[asset] & ~SLOT_IN_USE;
        if (amount == 0) revert PaymentHubNothingToWithdraw(_treasury, asset);
        _fees[asset] = SLOT_IN_USE;
        emit FeesSwept(asset, _treasury, amount);
        IERC20(asset).safeTransfer(_treasury, amount);
    }

    // ---------------------------------------------------------------- settlement

    /// @notice Settles many sessions in one asset. An entry that fails a check is skipped and
    /// reported by `SettlementRejected(sessionId, reason)`; it does not sink the batch and
    /// consumes neither its session id nor its nonce. Settler only.
    /// @param entries The sessions, packed back to back, each (big-endian, no padding):
    /// uint64 sessionId, uint64 vehicleId, uint64 chargerId, uint64 nonce, uint64 expiry,
    /// uint96 maxAmount, uint96 amount, bytes32 recordHash, uint16 signatureLength, signature.
    /// The signature is 65 bytes (r, s, v) from the device or owner key, or whatever an ERC-1271
    /// owner wallet accepts. The record hash is not interpreted: it is in the calldata so that the
    /// payment and the session's record are linked on-chain.
    /// @return settled How many entries were settled.
    /// @return rejected How many were skipped.
    function settleBatch(address asset, bytes calldata entries)
        external
        whenNotPaused
        onlySettler
        returns (uint256 settled, uint256 rejected)
    {
        Batch memory b = _openBatch(asset, entries.length / ENTRY_HEADER_BYTES);
        uint256 base;
        assembly ("memory-safe") {
            base := entries.offset
        }
        uint256 end = base + entries.length;
        uint256 p = base;
        // Calldata offsets and counts cannot overflow.
        unchecked {
            while (p < end) {
                uint256 next = _entryEnd(base, p, end);
                uint256 why = _settleEntry(b, p, false);
                if (why == NOT_BY_DEVICE) why = _settleSignedByOwner(b, p);
                if (why != 0) {
                    emit SettlementRejected(_sessionIdAt(p), Rejection(why));
                    ++rejected;
                }
                p = next;
            }
        }
        _closeBatch(b, rejected);
        return (b.settled, rejected);
    }

    /// @notice Settles one session, packed like one entry of `settleBatch`, reverting with the
    /// custom error of the first failed check. Settler only.
    function settle(address asset, bytes calldata entry) external whenNotPaused onlySettler {
        Batch memory b = _openBatch(asset, 1);
        uint256 p = _singleEntry(entry);
        uint256 why = _settleEntry(b, p, false);
        if (why == NOT_BY_DEVICE) why = _settleSignedByOwner(b, p);
        if (why != 0) _revertFor(Rejection(why), asset, _decode(p));
        _closeBatch(b, 0);
    }

    /// @notice Decodes one packed entry, for tools that want to check their encoding.
    function decodeEntry(bytes calldata entry) external pure returns (Entry memory) {
        return _decode(_singleEntry(entry));
    }

    /// @notice VehicleLedger's notice that a vehicle's device changed: rewrites the device cache
    /// in each of the vehicle's slots. Ledger only; never reverts for the ledger (a revert would
    /// block the rotation), paused or not.
    function vehicleDeviceChanged(uint256 vehicleId, address device) external override {
        if (msg.sender != address(_vehicles)) revert PaymentHubUnauthorizedLedger(msg.sender);
        uint256 cache = (uint256(uint160(device)) & MASK_128) << CACHE_SHIFT;
        uint256 n = _assets.length;
        for (uint256 i = 0; i < n; ++i) {
            uint256 acct = _accounts[vehicleId][_assets[i]];
            // An unused slot stays unused: the first deposit or settlement fills its cache.
            if (acct != 0) _accounts[vehicleId][_assets[i]] = (acct & ~CACHE_MASK) | cache;
        }
    }

    // ---------------------------------------------------------------- governance

    /// @notice Sets the ceilings of hosts' tariffs in `asset`. Governance only.
    function setTariffBounds(address asset, TariffBounds calldata bounds) external onlyOwner {
        if (asset == address(0)) revert PaymentHubZeroAddress();
        _tariffBounds[asset] = bounds;
        emit TariffBoundsChanged(asset, bounds);
    }

    /// @notice Sets the protocol fee in basis points, at most MAX_FEE_BPS. Governance only.
    function setProtocolFee(uint256 feeBps) external onlyOwner {
        _setProtocolFee(feeBps);
    }

    /// @notice Allows or disallows an asset for deposits and settlement. Withdrawals always work.
    /// Governance only.
    function setAssetAllowed(address asset, bool allowed) external onlyOwner {
        _setAssetAllowed(asset, allowed);
    }

    /// @notice Sets the commission hook (address zero: the flat protocol fee). Governance only.
    function setCommissionHook(address hook) external onlyOwner {
        emit CommissionHookChanged(_commissionHook, hook);
        _commissionHook = hook;
    }

    /// @notice Sets the pause guardian (address zero: none). Governance only.
    function setGuardian(address guardian_) external onlyOwner {
        emit GuardianChanged(_guardian, guardian_);
        _guardian = guardian_;
    }

    /// @notice Allows or disallows an account to settle. Governance only.
    function setSettler(address account, bool allowed) external onlyOwner {
        _setSettler(account, allowed);
    }

    /// @notice Sets where fees are swept to. Governance only.
    function setTreasury(address treasury_) external onlyOwner {
        _setTreasury(treasury_);
    }

    /// @notice Stops deposits, withdrawals and settlement. The guardian or governance.
    function pause() external {
        if (msg.sender != _guardian && msg.sender != owner()) revert PaymentHubUnauthorizedGuardian(msg.sender);
        _pause();
    }

    /// @notice Resumes after a pause. Governance only.
    function unpause() external onlyOwner {
        _unpause();
    }

    // ---------------------------------------------------------------- views

    /// @notice A vehicle's balance in an asset and the last authorization nonce it used there.
    function accountOf(uint256 vehicleId, address asset) external view returns (uint256 balance, uint64 lastNonce) {
        uint256 acct = _accounts[vehicleId][asset];
        return (acct & BALANCE_MASK, uint64(acct >> NONCE_SHIFT));
    }

    /// @notice Whether a session id has been settled.
    function isSettled(uint256 sessionId) external view returns (bool) {
        return _settledSessions[sessionId >> 8] & (1 << (sessionId & 0xff)) != 0;
    }

    /// @notice Earnings credited to a charger holder and not yet withdrawn.
    function earningsOf(address payee, address asset) external view returns (uint256) {
        return _earnings[payee][asset] & ~SLOT_IN_USE;
    }

    /// @notice Fees accrued in an asset and not yet swept to the treasury.
    function feesAccrued(address asset) external view returns (uint256) {
        return _fees[asset] & ~SLOT_IN_USE;
    }

    /// @notice The flat protocol fee in basis points.
    function protocolFeeBps() external view returns (uint256) {
        return _protocolFeeBps;
    }

    function commissionHook() external view returns (address) {
        return _commissionHook;
    }

    function guardian() external view returns (address) {
        return _guardian;
    }

    function treasury() external view returns (address) {
        return _treasury;
    }

    function isSettler(address account) external view returns (bool) {
        return _settlers[account];
    }

    /// @notice The DAO's tariff ceilings in `asset` (all zero: none published).
    function tariffBounds(address asset) external view returns (TariffBounds memory) {
        return _tariffBounds[asset];
    }

    function isAssetAllowed(address asset) external view returns (bool) {
        return _allowedAssets[asset];
    }

    function vehicleLedger() external view returns (address) {
        return address(_vehicles);
    }

    function stationRegistry() external view returns (address) {
        return _stations;
    }

    /// @notice The EIP-712 domain separator of charge authorizations.
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @notice The EIP-712 digest a vehicle signs for a charge authorization.
    function authorizationDigest(
        uint256 vehicleId,
        uint256 chargerId,
        address asset,
        uint256 maxAmount,
        uint64 expiry,
        uint64 nonce
    ) external view returns (bytes32) {
        return _hashTypedDataV4(_structHash(vehicleId, chargerId, asset, maxAmount, expiry, nonce));
    }

    // ---------------------------------------------------------------- internals

    function _deposit(uint256 vehicleId, address asset, uint256 amount) private {
        if (!_allowedAssets[asset]) revert PaymentHubAssetNotAllowed(asset);
        if (amount == 0) revert PaymentHubZeroAmount();
        // Ids run from 1 to totalVehicles() and are never removed.
        if (vehicleId == 0 || vehicleId > _vehicles.totalVehicles()) revert PaymentHubUnknownVehicle(vehicleId);
        uint256 acct = _accounts[vehicleId][asset];
        if ((acct & BALANCE_MASK) + amount > BALANCE_MASK) revert PaymentHubBalanceOverflow(vehicleId, asset);
        // The balance cannot carry into the cache: checked above. A deposit also refreshes the
        // device cache, so that the vehicle's next settlement need not ask the ledger.
        acct += amount;
        if (_cacheOn()) {
            address device = _vehicles.vehicle(vehicleId).device;
            acct = (acct & ~CACHE_MASK) | ((uint256(uint160(device)) & MASK_128) << CACHE_SHIFT);
        }
        _accounts[vehicleId][asset] = acct;
        emit Deposited(vehicleId, asset, msg.sender, amount);
        IERC20(asset).safeTransferFrom(msg.sender, address(this), amount);
    }

    function _openBatch(address asset, uint256 capacity) private view returns (Batch memory b) {
        if (!_allowedAssets[asset]) revert PaymentHubAssetNotAllowed(asset);
        b.asset = asset;
        b.domainSeparator = _domainSeparatorV4();
        b.wordIndex = type(uint256).max; // no word held yet: session ids are below 2^64
        if (_cacheOn()) b.cacheOn = 1;
        b.chargers = new uint256[](capacity + 1);
        b.holders = new address[](capacity + 1);
        b.feeBps = _protocolFeeBps;
        b.hook = _commissionHook;
    }

    /// @dev Whether the device cache is in use: the ledger tells this hub of every device change.
    /// A ledger that does not (another observer, none, or one without `deviceObserver`) means
    /// every session asks the ledger.
    function _cacheOn() private view returns (bool on) {
        address ledger = address(_vehicles);
        assembly ("memory-safe") {
            mstore(0x00, shl(224, DEVICE_OBSERVER))
            // Arguments are evaluated right to left: the call comes before returndatasize.
            let ok := and(gt(returndatasize(), 0x1f), staticcall(gas(), ledger, 0x00, 0x04, 0x00, 0x20))
            on := and(ok, eq(mload(0x00), address()))
        }
    }

    /// @dev Where the entry at calldata offset `p` ends; reverts if it runs past `end`.
    function _entryEnd(uint256 base, uint256 p, uint256 end) private pure returns (uint256 next) {
        bool truncated;
        assembly ("memory-safe") {
            next := add(add(p, ENTRY_HEADER_BYTES), shr(240, calldataload(add(p, 0x60))))
            truncated := or(gt(add(p, ENTRY_HEADER_BYTES), end), gt(next, end))
        }
        if (truncated) revert PaymentHubMalformedEntries(p - base);
    }

    function _singleEntry(bytes calldata entry) private pure returns (uint256 p) {
        assembly ("memory-safe") {
            p := entry.offset
        }
        if (_entryEnd(p, p, p + entry.length) != p + entry.length) revert PaymentHubMalformedEntries(0);
    }

    function _sessionIdAt(uint256 p) private pure returns (uint256 sessionId) {
        assembly ("memory-safe") {
            sessionId := shr(192, calldataload(p))
        }
    }

    /// @dev The entry at calldata offset `p` as a struct, for the uncommon paths and for errors.
    function _decode(uint256 p) private pure returns (Entry memory e) {
        uint256 w0;
        uint256 w1;
        bytes32 recordHash;
        uint256 length;
        assembly ("memory-safe") {
            w0 := calldataload(p)
            w1 := calldataload(add(p, 0x20))
            recordHash := calldataload(add(p, 0x40))
            length := shr(240, calldataload(add(p, 0x60)))
        }
        e.sessionId = w0 >> 192;
        e.vehicleId = (w0 >> 128) & MASK_64;
        e.chargerId = (w0 >> 64) & MASK_64;
        e.nonce = w0 & MASK_64;
        e.expiry = w1 >> 192;
        e.maxAmount = (w1 >> 96) & MASK_96;
        e.amount = w1 & MASK_96;
        e.recordHash = recordHash;
        e.signatureOffset = p + ENTRY_HEADER_BYTES;
        e.signatureLength = length;
    }

    /// @dev An entry whose signature is not the device's: it settles if the owner (or a contract
    /// device) signed it.
    function _settleSignedByOwner(Batch memory b, uint256 p) private returns (uint256) {
        Entry memory e = _decode(p);
        bytes32 digest = _hashTypedDataV4(
            _structHash(e.vehicleId, e.chargerId, b.asset, e.maxAmount, e.expiry, e.nonce)
        );
        if (!_signedByOwner(e, digest)) return uint256(Rejection.InvalidSignature);
        return _settleEntry(b, p, true);
    }

    /// @dev Checks the entry at calldata offset `p` and, if every check passes, applies it.
    /// Returns 0 (settled), a `Rejection` code, or NOT_BY_DEVICE when the signature is not the
    /// vehicle's device key's: then the caller checks the owner and calls again with
    /// `ownerSigned`. Nothing is written unless the entry settles.
    ///
    /// It runs once per session, so its steps are assembly, which reads the packed entry in place:
    /// the same steps over a decoded memory struct cost about 500 gas more per session (measured
    /// with bench/settlement_gas.py). Checks, in the order reported:
    ///  1. the session's bit in the bitmap word the batch holds in memory (flushing the previous
    ///     word when the id moves to another);
    ///  2. expiry, then amount <= maxAmount;
    ///  3. the vehicle's packed slot: the nonce must be at most MAX_NONCE and above the last.
    /// Then `_signedByDevice` checks the signature and `_commitEntry` does the rest.
    function _settleEntry(Batch memory b, uint256 p, bool ownerSigned) private returns (uint256 why) {
        address ledger = address(_vehicles);
        uint256 bit;
        uint256 slot;
        uint256 acct;
        assembly ("memory-safe") {
            let w0 := calldataload(p) // sessionId | vehicleId | chargerId | nonce, 64 bits each
            let w1 := calldataload(add(p, 0x20)) // expiry (64) | maxAmount (96) | amount (96)
            for {} 1 {} {
                // 1.
                {
                    let wordIndex := shr(200, w0) // sessionId >> 8
                    if iszero(eq(wordIndex, mload(add(b, B_WORD_INDEX)))) {
                        if mload(add(b, B_WORD_DIRTY)) {
                            mstore(0x00, mload(add(b, B_WORD_INDEX)))
                            mstore(0x20, _settledSessions.slot)
                            sstore(keccak256(0x00, 0x40), mload(add(b, B_WORD)))
                            mstore(add(b, B_WORD_DIRTY), 0)
                        }
                        mstore(0x00, wordIndex)
                        mstore(0x20, _settledSessions.slot)
                        mstore(add(b, B_WORD), sload(keccak256(0x00, 0x40)))
                        mstore(add(b, B_WORD_INDEX), wordIndex)
                    }
                }
                bit := shl(and(shr(192, w0), 0xff), 1)
                if and(mload(add(b, B_WORD)), bit) {
                    why := 1 // AlreadySettled
                    break
                }
                // 2.
                if gt(timestamp(), shr(192, w1)) {
                    why := 2 // Expired
                    break
                }
                if gt(and(w1, MASK_96), and(shr(96, w1), MASK_96)) {
                    why := 3 // OverLimit
                    break
                }
                // 3.
                let vehicleId := and(shr(128, w0), MASK_64)
                mstore(0x00, vehicleId)
                mstore(0x20, _accounts.slot)
                mstore(0x20, keccak256(0x00, 0x40))
                mstore(0x00, mload(add(b, B_ASSET)))
                slot := keccak256(0x00, 0x40)
                acct := sload(slot)
                if gt(and(w0, MASK_64), MAX_NONCE) {
                    why := 8 // NonceOutOfRange
                    break
                }
                if iszero(gt(and(w0, MASK_64), shr(NONCE_SHIFT, acct))) {
                    why := 4 // NonceUsed
                    break
                }
                break
            }
        }
        if (why != 0) return why;
        uint256 cache = acct & CACHE_MASK;
        if (!ownerSigned) {
            bool byDevice;
            (byDevice, cache) = _signedByDevice(b, p, ledger, cache);
            if (!byDevice) return NOT_BY_DEVICE;
        }
        return _commitEntry(b, p, bit, slot, acct, cache);
    }

    /// @dev Whether the entry's 65-byte signature recovers (low-s only) to the vehicle's device,
    /// and the device cache to keep in the vehicle's slot.
    ///
    /// The cache holds the low 128 bits of the vehicle's device address, in the vehicle's slot
    /// that settlement reads anyway. VehicleLedger tells this hub of every device change in the
    /// same transaction (`vehicleDeviceChanged`), which rewrites the cache, so a cached device is
    /// always the current one. A signer that matches it is the device and the ledger is not asked:
    /// that saves a call and a cold storage read, about 2,800 gas per session. Matching 128 bits
    /// of a given address with another key takes about 2^128 key generations. On a miss (no
    /// cache yet, or another signer) the ledger is asked as before and, if the signer is the
    /// device, the cache is filled in the same slot write. Without the ledger's notices
    /// (`_cacheOn`) every session asks the ledger.
    function _signedByDevice(Batch memory b, uint256 p, address ledger, uint256 cache)
        private
        view
        returns (bool ok, uint256 newCache)
    {
        newCache = cache;
        bool failed;
        assembly ("memory-safe") {
            let sig := add(p, ENTRY_HEADER_BYTES)
            let s := calldataload(add(sig, 0x20))
            if and(eq(shr(240, calldataload(add(p, 0x60))), 65), iszero(gt(s, HALF_ORDER))) {
                let w0 := calldataload(p)
                let w1 := calldataload(add(p, 0x20))
                let vehicleId := and(shr(128, w0), MASK_64)
                let m := mload(0x40) // scratch beyond the free memory pointer, not kept
                mstore(m, CHARGE_AUTHORIZATION_TYPEHASH)
                mstore(add(m, 0x20), vehicleId)
                mstore(add(m, 0x40), and(shr(64, w0), MASK_64)) // chargerId
                mstore(add(m, 0x60), mload(add(b, B_ASSET)))
                mstore(add(m, 0x80), and(shr(96, w1), MASK_96)) // maxAmount
                mstore(add(m, 0xa0), shr(192, w1)) // expiry
                mstore(add(m, 0xc0), and(w0, MASK_64)) // nonce
                let structHash := keccak256(m, 0xe0)
                mstore(m, shl(240, 0x1901))
                mstore(add(m, 0x02), mload(add(b, B_DOMAIN)))
                mstore(add(m, 0x22), structHash)
                mstore(m, keccak256(m, 0x42)) // the digest
                mstore(add(m, 0x20), byte(0, calldataload(add(sig, 0x40)))) // v
                mstore(add(m, 0x40), calldataload(sig)) // r
                mstore(add(m, 0x60), s)
                mstore(0x00, 0)
                // The precompile returns nothing for a signature it cannot recover.
                pop(staticcall(gas(), 0x01, m, 0x80, 0x00, 0x20))
                let signer := mul(mload(0x00), eq(returndatasize(), 0x20))
                if signer {
                    let fresh := shl(CACHE_SHIFT, and(signer, MASK_128))
                    switch and(mload(add(b, B_CACHE_ON)), eq(fresh, cache))
                    case 1 { ok := 1 }
                    default {
                        mstore(0x00, shl(224, VEHICLE_ID_OF_DEVICE))
                        mstore(0x04, signer)
                        // Arguments are evaluated right to left: the call comes before returndatasize.
                        failed := iszero(
                            and(gt(returndatasize(), 0x1f), staticcall(gas(), ledger, 0x00, 0x24, 0x00, 0x20))
                        )
                        // The ledger answers 0 for an address that is no device: vehicle id 0 never matches.
                        ok := and(iszero(failed), and(eq(mload(0x00), vehicleId), iszero(iszero(vehicleId))))
                        if and(ok, mload(add(b, B_CACHE_ON))) { newCache := fresh }
                    }
                }
            }
        }
        if (failed) revert PaymentHubLookupFailed(ledger);
    }

    /// @dev The steps after the signature: balance >= amount, the charger's holder (once per
    /// charger and batch), then the effects: the packed slot, the session's bit, and the charger's
    /// gross in transient storage.
    function _commitEntry(Batch memory b, uint256 p, uint256 bit, uint256 slot, uint256 acct, uint256 cache)
        private
        returns (uint256)
    {
        uint256 w0;
        uint256 amount;
        assembly ("memory-safe") {
            w0 := calldataload(p)
            amount := and(calldataload(add(p, 0x20)), MASK_96)
        }
        uint256 funds = acct & BALANCE_MASK;
        if (amount > funds) return uint256(Rejection.InsufficientBalance);
        uint256 chargerId = (w0 >> 64) & MASK_64;
        uint256 chargerSlot = CHARGER_PREFIX | chargerId;
        uint256 credited;
        assembly ("memory-safe") {
            credited := tload(chargerSlot)
        }
        if (credited == 0) {
            credited = _addCharger(b, chargerId);
            if (credited == 0) return uint256(Rejection.UnknownCharger);
        }
        // A charger's gross cannot reach 2^192: it is at most what the hub holds. The nonce is at
        // most MAX_NONCE (checked), so it fits its 32 bits.
        assembly ("memory-safe") {
            sstore(slot, or(or(shl(NONCE_SHIFT, and(w0, MASK_64)), cache), sub(funds, amount)))
            tstore(chargerSlot, add(credited, amount))
            mstore(add(b, B_WORD), or(mload(add(b, B_WORD)), bit))
            mstore(add(b, B_WORD_DIRTY), 1)
            mstore(add(b, B_SETTLED), add(mload(add(b, B_SETTLED)), 1))
        }
        return 0;
    }

    /// @dev Looks up a charger's holder (StationRegistry.ownerOf) and adds the charger to the
    /// batch; returns its initial transient value, (index + 1) << 192, or 0 if the token does not
    /// exist.
    function _addCharger(Batch memory b, uint256 chargerId) private view returns (uint256) {
        address registry = _stations;
        bool ok;
        uint256 size;
        address holder;
        assembly ("memory-safe") {
            mstore(0x00, shl(224, OWNER_OF))
            mstore(0x04, chargerId)
            ok := staticcall(gas(), registry, 0x00, 0x24, 0x00, 0x20)
            size := returndatasize()
            holder := and(mload(0x00), 0xffffffffffffffffffffffffffffffffffffffff)
        }
        if (!ok || size < 32) {
            // A missing token reverts with ERC721NonexistentToken. A revert without data is out of
            // gas or a broken registry, and must not pass for an unknown charger.
            if (ok || size == 0) revert PaymentHubLookupFailed(registry);
            return 0;
        }
        uint256 i = b.chargerCount;
        b.chargers[i] = chargerId;
        b.holders[i] = holder;
        b.chargerCount = i + 1;
        return (i + 1) << 192;
    }

    /// @dev Per charger: the fee on its gross (flat, or from the commission hook), the rest to
    /// its holder. Per holder: one storage write and one `EarningsCredited`, however many chargers
    /// and sessions it had. Then the fees, and the batch's summary.
    function _closeBatch(Batch memory b, uint256 rejected) private {
        if (b.wordDirty == 1) _settledSessions[b.wordIndex] = b.word;
        address asset = b.asset;
        uint256 gross;
        uint256 fees;
        address[] memory payees = new address[](b.chargerCount);
        uint256 payeeCount;
        for (uint256 i = 0; i < b.chargerCount; ++i) {
            uint256 chargerId = b.chargers[i];
            address holder = b.holders[i];
            uint256 chargerGross = _takeTransient(CHARGER_PREFIX | chargerId) & AMOUNT_MASK;
            uint256 feeBps = b.hook == address(0) ? b.feeBps : _commissionBps(b, chargerId, holder);
            uint256 fee = chargerGross * feeBps / BPS;
            gross += chargerGross;
            fees += fee;
            uint256 holderSlot = HOLDER_PREFIX | uint160(holder);
            uint256 held;
            assembly ("memory-safe") {
                held := tload(holderSlot)
            }
            if (held == 0) {
                payees[payeeCount] = holder;
                held = ++payeeCount << 192;
            }
            held += chargerGross - fee;
            assembly ("memory-safe") {
                tstore(holderSlot, held)
            }
        }
        for (uint256 i = 0; i < payeeCount; ++i) {
            address payee = payees[i];
            uint256 amount = _takeTransient(HOLDER_PREFIX | uint160(payee)) & AMOUNT_MASK;
            if (amount == 0) continue;
            // Amounts stay far below 2^255: they are bounded by the assets' supply.
            _earnings[payee][asset] = (_earnings[payee][asset] | SLOT_IN_USE) + amount;
            emit EarningsCredited(payee, asset, amount);
        }
        if (fees != 0) _fees[asset] = (_fees[asset] | SLOT_IN_USE) + fees;
        emit BatchSettled(asset, b.settled, rejected, gross, fees);
    }

    function _takeTransient(uint256 slot) private returns (uint256 value) {
        assembly ("memory-safe") {
            value := tload(slot)
            tstore(slot, 0)
        }
    }

    /// @dev The uncommon signers: the owner (ECDSA, or ERC-1271 for a contract wallet), or a
    /// device that is itself a contract (ERC-1271).
    function _signedByOwner(Entry memory e, bytes32 digest) private view returns (bool) {
        uint256 vehicleId = e.vehicleId;
        // Ids run from 1 to totalVehicles(); an unknown vehicle must not revert the batch.
        if (vehicleId == 0 || vehicleId > _vehicles.totalVehicles()) return false;
        VehicleLedger.Vehicle memory v = _vehicles.vehicle(vehicleId);
        if (v.owner.code.length == 0) {
            if (e.signatureLength == 65 && _recover(digest, e.signatureOffset) == v.owner) return true;
        } else if (_isValidERC1271(v.owner, digest, e)) {
            return true;
        }
        return v.device.code.length != 0 && _isValidERC1271(v.device, digest, e);
    }

    /// @dev ecrecover of a 65-byte (r, s, v) signature in calldata; zero if invalid or malleable.
    function _recover(bytes32 digest, uint256 offset) private view returns (address signer) {
        assembly ("memory-safe") {
            let s := calldataload(add(offset, 0x20))
            if iszero(gt(s, HALF_ORDER)) {
                let m := mload(0x40)
                mstore(m, digest)
                mstore(add(m, 0x20), byte(0, calldataload(add(offset, 0x40))))
                mstore(add(m, 0x40), calldataload(offset))
                mstore(add(m, 0x60), s)
                mstore(0x00, 0)
                pop(staticcall(gas(), 0x01, m, 0x80, 0x00, 0x20))
                signer := mul(mload(0x00), eq(returndatasize(), 0x20))
            }
        }
    }

    function _isValidERC1271(address wallet, bytes32 digest, Entry memory e) private view returns (bool) {
        // Without the full allowance a wallet could fail for want of gas, and a valid entry would
        // be rejected (and gas estimation would settle on too little).
        if (gasleft() < ERC1271_GAS + ERC1271_GAS / 63 + 5_000) revert PaymentHubNotEnoughGas();
        bytes calldata signature;
        uint256 offset = e.signatureOffset;
        uint256 length = e.signatureLength;
        assembly ("memory-safe") {
            signature.offset := offset
            signature.length := length
        }
        return _staticWord(wallet, ERC1271_GAS, abi.encodeCall(IERC1271.isValidSignature, (digest, signature)))
            == bytes32(IERC1271.isValidSignature.selector);
    }

    function _commissionBps(Batch memory b, uint256 chargerId, address payee) private view returns (uint256) {
        if (gasleft() < COMMISSION_HOOK_GAS + COMMISSION_HOOK_GAS / 63 + 5_000) revert PaymentHubNotEnoughGas();
        bytes memory call = abi.encodeCall(ICommissionHook.commissionBps, (chargerId, payee, b.asset, b.feeBps));
        (bool ok, bytes32 word) = _tryStaticWord(b.hook, COMMISSION_HOOK_GAS, call);
        if (!ok) return b.feeBps;
        uint256 bps = uint256(word);
        return bps > MAX_FEE_BPS ? MAX_FEE_BPS : bps;
    }

    /// @dev The first word a static call returns, copying no more than that (a contract cannot
    /// make the hub pay for copying a large answer); zero if the call fails or returns less.
    function _staticWord(address target, uint256 gasLimit, bytes memory data) private view returns (bytes32 word) {
        (, word) = _tryStaticWord(target, gasLimit, data);
    }

    function _tryStaticWord(address target, uint256 gasLimit, bytes memory data)
        private
        view
        returns (bool ok, bytes32 word)
    {
        assembly ("memory-safe") {
            mstore(0x00, 0)
            ok := staticcall(gasLimit, target, add(data, 0x20), mload(data), 0x00, 0x20)
            ok := and(ok, gt(returndatasize(), 0x1f))
            word := mul(mload(0x00), ok)
        }
    }

    function _structHash(
        uint256 vehicleId,
        uint256 chargerId,
        address asset,
        uint256 maxAmount,
        uint256 expiry,
        uint256 nonce
    ) private pure returns (bytes32 h) {
        bytes32 typehash = CHARGE_AUTHORIZATION_TYPEHASH;
        // abi.encode would allocate 224 bytes per session; over a batch of hundreds the memory
        // expansion costs more than the hashing, so the words go to free memory without keeping it.
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, typehash)
            mstore(add(p, 0x20), vehicleId)
            mstore(add(p, 0x40), chargerId)
            mstore(add(p, 0x60), asset)
            mstore(add(p, 0x80), maxAmount)
            mstore(add(p, 0xa0), expiry)
            mstore(add(p, 0xc0), nonce)
            h := keccak256(p, 0xe0)
        }
    }

    function _revertFor(Rejection why, address asset, Entry memory e) private view {
        if (why == Rejection.AlreadySettled) revert PaymentHubSessionAlreadySettled(e.sessionId);
        if (why == Rejection.Expired) revert PaymentHubAuthorizationExpired(e.sessionId, e.expiry);
        if (why == Rejection.OverLimit) revert PaymentHubAmountOverLimit(e.sessionId, e.amount, e.maxAmount);
        uint256 acct = _accounts[e.vehicleId][asset];
        if (why == Rejection.NonceUsed) revert PaymentHubNonceUsed(e.sessionId, e.nonce, acct >> NONCE_SHIFT);
        if (why == Rejection.NonceOutOfRange) revert PaymentHubNonceOutOfRange(e.sessionId, e.nonce, MAX_NONCE);
        if (why == Rejection.InvalidSignature) revert PaymentHubInvalidSignature(e.sessionId, e.vehicleId);
        if (why == Rejection.InsufficientBalance) {
            revert PaymentHubInsufficientBalance(e.vehicleId, asset, acct & BALANCE_MASK, e.amount);
        }
        revert PaymentHubUnknownCharger(e.sessionId, e.chargerId);
    }

    function _setProtocolFee(uint256 feeBps) private {
        if (feeBps > MAX_FEE_BPS) revert PaymentHubFeeTooHigh(feeBps, MAX_FEE_BPS);
        emit ProtocolFeeChanged(_protocolFeeBps, feeBps);
        _protocolFeeBps = uint16(feeBps);
    }

    function _setAssetAllowed(address asset, bool allowed) private {
        if (asset == address(0)) revert PaymentHubZeroAddress();
        if (allowed && !_listedAssets[asset]) {
            if (_assets.length == MAX_ASSETS) revert PaymentHubTooManyAssets(MAX_ASSETS);
            _listedAssets[asset] = true;
            _assets.push(asset);
        }
        _allowedAssets[asset] = allowed;
        emit AssetAllowanceChanged(asset, allowed);
    }

    function _setSettler(address account, bool allowed) private {
        if (account == address(0)) revert PaymentHubZeroAddress();
        _settlers[account] = allowed;
        emit SettlerChanged(account, allowed);
    }

    function _setTreasury(address treasury_) private {
        if (treasury_ == address(0)) revert PaymentHubZeroAddress();
        emit TreasuryChanged(_treasury, treasury_);
        _treasury = treasury_;
    }
}
