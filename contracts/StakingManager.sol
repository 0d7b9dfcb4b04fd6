// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ICommissionHook} from "./ICommissionHook.sol";

/// @title StakingManager
/// @notice Hosts stake ELC on the chargers they hold. The stake of a charger's current holder
/// puts the charger in a staking tier, set by governance, which lowers the protocol's commission
/// on the charger's sessions (this contract is PaymentHub's commission hook) and boosts the
/// charger in discovery. Stake leaves through an unbonding delay, during which it no longer
/// counts for the tier but can still be slashed by governance for proven fraud.
/// @dev Stake is keyed by (charger, staker), never by charger alone. Only the charger's current
/// holder may add stake, and only the holder's own stake counts for the tier: whoever receives
/// the NFT neither inherits nor controls the previous holder's stake, and the previous holder can
/// still unbond and withdraw it (but no longer add to it). A position is one storage slot: bonded
/// and unbonding amounts as uint96 (79 billion ELC) and the unbonding release time.
contract StakingManager is ICommissionHook, Ownable {
    using SafeERC20 for IERC20;

    /// @notice One staking tier. Tiers are numbered from 1 in ascending order of `minStake`;
    /// tier 0 means "no tier" (no discount, no boost).
    struct Tier {
        uint96 minStake; // bonded stake of the holder needed for the tier, ELC base units, > 0
        uint16 discountBps; // share of the protocol fee waived, in bps of the fee (10,000 = all of it)
        uint16 boostBps; // discovery boost, in bps added to the charger's ranking score
    }

    /// @notice One staker's stake on one charger.
    struct Position {
        uint96 bonded; // counts for the tier while the staker holds the charger
        uint96 unbonding; // requested out, withdrawable from `releaseAt` on; slashable until then
        uint64 releaseAt; // unix seconds; 0 when nothing is unbonding
    }

    /// @notice Most tiers governance may define.
    uint256 public constant MAX_TIERS = 8;
    /// @notice Upper bound of a tier's discount: the whole protocol fee.
    uint256 public constant MAX_DISCOUNT_BPS = 10_000;
    /// @notice Upper bound of a tier's discovery boost: +100 % of the ranking score.
    uint256 public constant MAX_BOOST_BPS = 10_000;
    /// @notice Upper bound of the unbonding delay.
    uint256 public constant MAX_UNBONDING_DELAY = 365 days;
    uint256 private constant BPS = 10_000;

    IERC20 private immutable _token;
    IERC721 private immutable _stations;

    // Read by every commission lookup together: one slot.
    uint64 private _unbondingDelay;
    uint8 private _tierCount;
    // Two tiers per slot, so the commission hook reads at most four slots of tiers.
    Tier[MAX_TIERS] private _tiers;
    address private _treasury;
    uint256 private _totalStaked;
    mapping(uint256 chargerId => mapping(address staker => Position)) private _positions;
    // One bit per charger, 256 chargers per slot (charger ids are sequential from 1): set by the
    // first stake on the charger, never cleared. The commission hook answers the flat fee for a
    // charger without the bit from one (mostly warm) slot read instead of a cold position read:
    // about 2,000 gas less per unstaked charger and batch.
    mapping(uint256 word => uint256 bits) private _everStaked;

    error StakingManagerZeroAddress();
    error StakingManagerZeroAmount();
    error StakingManagerNotChargerHolder(uint256 chargerId, address account);
    error StakingManagerStakeTooLarge(uint256 chargerId, address staker, uint256 amount, uint256 maxAmount);
    error StakingManagerInsufficientStake(uint256 chargerId, address staker, uint256 bonded, uint256 requested);
    error StakingManagerWithdrawFirst(uint256 chargerId, address staker, uint256 released);
    error StakingManagerNothingToWithdraw(uint256 chargerId, address staker);
    error StakingManagerStillUnbonding(uint256 chargerId, address staker, uint256 releaseAt);
    error StakingManagerNothingToSlash(uint256 chargerId, address staker);
    error StakingManagerTooManyTiers(uint256 count, uint256 maxTiers);
    error StakingManagerTierOutOfOrder(uint256 index);
    error StakingManagerDiscountTooHigh(uint256 index, uint256 discountBps, uint256 maxDiscountBps);
    error StakingManagerBoostTooHigh(uint256 index, uint256 boostBps, uint256 maxBoostBps);
    error StakingManagerUnbondingDelayTooLong(uint256 delay, uint256 maxDelay);
    error StakingManagerUnknownTier(uint256 tierNumber);

    event Staked(uint256 indexed chargerId, address indexed staker, uint256 amount, uint256 bonded);
    event UnstakeRequested(
        uint256 indexed chargerId, address indexed staker, uint256 amount, uint256 unbonding, uint64 releaseAt
    );
    event Withdrawn(uint256 indexed chargerId, address indexed staker, uint256 amount);
    event Slashed(
        uint256 indexed chargerId, address indexed staker, uint256 amount, bytes32 evidence, address treasury
    );
    event TiersChanged(Tier[] tiers);
    event UnbondingDelayChanged(uint64 previousDelay, uint64 newDelay);
    event TreasuryChanged(address previousTreasury, address newTreasury);

    /// @param governance The timelock: sets tiers, the unbonding delay and the treasury, slashes.
    /// @param token_ ELC, the staked token (a plain ERC-20: no fee on transfer).
    /// @param stations_ StationRegistry, whose `ownerOf` says who holds a charger.
    /// @param treasury_ Receives slashed stake.
    /// @param unbondingDelay_ Seconds between `requestUnstake` and `withdraw`.
    /// @param tiers_ The first tier table (see `setTiers`).
    constructor(
        address governance,
        IERC20 token_,
        IERC721 stations_,
        address treasury_,
        uint64 unbondingDelay_,
        Tier[] memory tiers_
    ) Ownable(governance) {
        if (address(token_) == address(0) || address(stations_) == address(0)) revert StakingManagerZeroAddress();
        _token = token_;
        _stations = stations_;
        _setTreasury(treasury_);
        _setUnbondingDelay(unbondingDelay_);
        _setTiers(tiers_);
    }

    // ---------------------------------------------------------------- staking

    /// @notice Stakes `amount` ELC on a charger the sender holds. The sender must have approved
    /// this contract for `amount`. The stake counts for the charger's tier at once.
    /// @param chargerId The StationRegistry token id.
    /// @param amount ELC base units, > 0.
    function stake(uint256 chargerId, uint256 amount) external {
        if (amount == 0) revert StakingManagerZeroAmount();
        if (_stations.ownerOf(chargerId) != msg.sender) revert StakingManagerNotChargerHolder(chargerId, msg.sender);
        Position storage p = _positions[chargerId][msg.sender];
        uint256 bonded = p.bonded;
        uint256 room = type(uint96).max - bonded;
        if (amount > room) revert StakingManagerStakeTooLarge(chargerId, msg.sender, amount, room);
        // A position that holds stake got the charger's bit with its first stake.
        if (bonded == 0 && p.unbonding == 0) {
            uint256 bits = _everStaked[chargerId >> 8];
            uint256 bit = 1 << (chargerId & 0xff);
            if (bits & bit == 0) _everStaked[chargerId >> 8] = bits | bit;
        }
        bonded += amount;
        p.bonded = uint96(bonded);
        _totalStaked += amount;
        _token.safeTransferFrom(msg.sender, address(this), amount);
        emit Staked(chargerId, msg.sender, amount, bonded);
    }

    /// @notice Starts unbonding `amount` of the sender's bonded stake on a charger. It stops
    /// counting for the tier at once and can be withdrawn after the unbonding delay. Stake still
    /// unbonding from an earlier request is unbonded again with this one: its release time moves
    /// to now + the delay. Works whether or not the sender still holds the charger.
    /// @dev Reverts with `StakingManagerWithdrawFirst` while released stake waits to be
    /// withdrawn, so that a request never locks up stake that is already free.
    /// @return releaseAt When the whole unbonding amount can be withdrawn.
    function requestUnstake(uint256 chargerId, uint256 amount) external returns (uint64 releaseAt) {
        if (amount == 0) revert StakingManagerZeroAmount();
        Position memory p = _positions[chargerId][msg.sender];
        if (amount > p.bonded) revert StakingManagerInsufficientStake(chargerId, msg.sender, p.bonded, amount);
        if (p.unbonding != 0 && p.releaseAt <= block.timestamp) {
            revert StakingManagerWithdrawFirst(chargerId, msg.sender, p.unbonding);
        }
        releaseAt = uint64(block.timestamp) + _unbondingDelay;
        // amount <= bonded, and bonded + unbonding never exceeds what was staked (uint96 each, and
        // their sum is bounded by the token's supply, far below 2^96).
        uint96 unbonding = p.unbonding + uint96(amount);
        _positions[chargerId][msg.sender] = Position(p.bonded - uint96(amount), unbonding, releaseAt);
        emit UnstakeRequested(chargerId, msg.sender, amount, unbonding, releaseAt);
    }

    /// @notice Sends the sender's released unbonding stake on a charger back to the sender.
    /// @return amount What was withdrawn, ELC base units.
    function withdraw(uint256 chargerId) external returns (uint256 amount) {
        Position storage p = _positions[chargerId][msg.sender];
        amount = p.unbonding;
        if (amount == 0) revert StakingManagerNothingToWithdraw(chargerId, msg.sender);
        uint64 releaseAt = p.releaseAt;
        if (releaseAt > block.timestamp) revert StakingManagerStillUnbonding(chargerId, msg.sender, releaseAt);
        p.unbonding = 0;
        p.releaseAt = 0;
        _totalStaked -= amount;
        _token.safeTransfer(msg.sender, amount);
        emit Withdrawn(chargerId, msg.sender, amount);
    }

    // ---------------------------------------------------------------- commission hook and views

    /// @notice PaymentHub's commission for a charger's sessions: the protocol fee less the
    /// discount of the tier that `payee`'s bonded stake on the charger reaches. PaymentHub passes
    /// the charger's current holder as `payee`, so only the holder's own stake counts.
    /// @dev The discount is rounded down (the commission up). Reads one slot for a charger nobody
    /// ever staked on, at most seven otherwise, well inside PaymentHub's COMMISSION_HOOK_GAS.
    function commissionBps(uint256 chargerId, address payee, address, uint256 protocolFeeBps)
        external
        view
        returns (uint256)
    {
        if (_everStaked[chargerId >> 8] & (1 << (chargerId & 0xff)) == 0) return protocolFeeBps;
        uint256 tierNumber = _tierFor(_positions[chargerId][payee].bonded);
        if (tierNumber == 0) return protocolFeeBps;
        return protocolFeeBps - (protocolFeeBps * _tiers[tierNumber - 1].discountBps) / BPS;
    }

    /// @notice A charger's current holder, the holder's bonded stake on it, and the tier that
    /// stake reaches (0: none) with its discount and discovery boost.
    function tierOf(uint256 chargerId)
        external
        view
        returns (address holder, uint256 bonded, uint256 tierNumber, uint256 discountBps, uint256 boostBps)
    {
        holder = _stations.ownerOf(chargerId);
        bonded = _positions[chargerId][holder].bonded;
        tierNumber = _tierFor(bonded);
        if (tierNumber != 0) {
            Tier memory t = _tiers[tierNumber - 1];
            (discountBps, boostBps) = (t.discountBps, t.boostBps);
        }
    }

    /// @notice The discovery boost of a charger (bps added to its ranking score; 0 without a tier).
    function discoveryBoostBps(uint256 chargerId) external view returns (uint256) {
        uint256 tierNumber = _tierFor(_positions[chargerId][_stations.ownerOf(chargerId)].bonded);
        return tierNumber == 0 ? 0 : _tiers[tierNumber - 1].boostBps;
    }

    /// @notice Whether anyone ever staked on the charger (then the commission hook reads stakes).
    function everStaked(uint256 chargerId) external view returns (bool) {
        return _everStaked[chargerId >> 8] & (1 << (chargerId & 0xff)) != 0;
    }

    /// @notice The tier a bonded stake reaches (0: none).
    function tierForStake(uint256 bonded) external view returns (uint256) {
        return _tierFor(bonded);
    }

    /// @notice One staker's stake on one charger.
    function positionOf(uint256 chargerId, address staker) external view returns (Position memory) {
        return _positions[chargerId][staker];
    }

    /// @notice The tier table, tier 1 first.
    function tiers() external view returns (Tier[] memory out) {
        uint256 n = _tierCount;
        out = new Tier[](n);
        for (uint256 i = 0; i < n; ++i) {
            out[i] = _tiers[i];
        }
    }

    /// @notice One tier, numbered from 1.
    function tier(uint256 tierNumber) external view returns (Tier memory) {
        if (tierNumber == 0 || tierNumber > _tierCount) revert StakingManagerUnknownTier(tierNumber);
        return _tiers[tierNumber - 1];
    }

    /// @notice How many tiers there are.
    function tierCount() external view returns (uint256) {
        return _tierCount;
    }

    /// @notice Seconds between a request to unstake and the withdrawal.
    function unbondingDelay() external view returns (uint256) {
        return _unbondingDelay;
    }

    /// @notice All stake held, bonded and unbonding, ELC base units.
    function totalStaked() external view returns (uint256) {
        return _totalStaked;
    }

    /// @notice Where slashed stake goes.
    function treasury() external view returns (address) {
        return _treasury;
    }

    /// @notice The staked token (ELC).
    function token() external view returns (address) {
        return address(_token);
    }

    /// @notice The charger registry whose holders may stake.
    function stationRegistry() external view returns (address) {
        return address(_stations);
    }

    // ---------------------------------------------------------------- governance

    /// @notice Takes up to `amount` of a staker's stake on a charger, bonded first, then
    /// unbonding, and sends it to the treasury. Governance only, after proven fraud.
    /// @dev Capped at what the position holds, so that a proposal still executes if the staker
    /// moved stake into unbonding meanwhile; reverts only if the position is empty. Slashing is
    /// effective as long as the unbonding delay is longer than the governance cycle (voting delay +
    /// voting period + timelock delay): stake cannot leave before a proposal can execute.
    /// @param evidence A reference to the proof of fraud (e.g. the hash of a session record or a
    /// report), recorded in the event.
    /// @return slashed What was taken, ELC base units.
    function slash(uint256 chargerId, address staker, uint256 amount, bytes32 evidence)
        external
        onlyOwner
        returns (uint256 slashed)
    {
        Position memory p = _positions[chargerId][staker];
        uint256 held = uint256(p.bonded) + p.unbonding;
        if (held == 0 || amount == 0) revert StakingManagerNothingToSlash(chargerId, staker);
        slashed = amount < held ? amount : held;
        uint96 fromBonded = slashed < p.bonded ? uint96(slashed) : p.bonded;
        uint96 fromUnbonding = uint96(slashed) - fromBonded;
        p.bonded -= fromBonded;
        p.unbonding -= fromUnbonding;
        if (p.unbonding == 0) p.releaseAt = 0;
        _positions[chargerId][staker] = p;
        _totalStaked -= slashed;
        address to = _treasury;
        _token.safeTransfer(to, slashed);
        emit Slashed(chargerId, staker, slashed, evidence, to);
    }

    /// @notice Replaces the tier table. Governance only. Tiers come in ascending order of
    /// `minStake` (strictly, and above 0); discounts and boosts never fall from one tier to the
    /// next. An empty table means no discounts and no boosts.
    function setTiers(Tier[] calldata newTiers) external onlyOwner {
        _setTiers(newTiers);
    }

    /// @notice Sets the unbonding delay for later requests (pending ones keep their release
    /// time). Governance only; at most MAX_UNBONDING_DELAY.
    function setUnbondingDelay(uint64 delay) external onlyOwner {
        _setUnbondingDelay(delay);
    }

    /// @notice Sets where slashed stake goes. Governance only; not zero.
    function setTreasury(address treasury_) external onlyOwner {
        _setTreasury(treasury_);
    }

    // ---------------------------------------------------------------- internals

    /// @dev The highest tier whose minimum `bonded` reaches; 0 for none. Zero stake reads no tier.
    function _tierFor(uint256 bonded) private view returns (uint256 tierNumber) {
        if (bonded == 0) return 0;
        uint256 n = _tierCount;
        while (tierNumber < n && _tiers[tierNumber].minStake <= bonded) {
            ++tierNumber;
        }
    }

    function _setTiers(Tier[] memory newTiers) private {
        uint256 n = newTiers.length;
        if (n > MAX_TIERS) revert StakingManagerTooManyTiers(n, MAX_TIERS);
        Tier memory previous = Tier(0, 0, 0);
        for (uint256 i = 0; i < n; ++i) {
            Tier memory t = newTiers[i];
            if (t.discountBps > MAX_DISCOUNT_BPS) revert StakingManagerDiscountTooHigh(i, t.discountBps, MAX_DISCOUNT_BPS);
            if (t.boostBps > MAX_BOOST_BPS) revert StakingManagerBoostTooHigh(i, t.boostBps, MAX_BOOST_BPS);
            if (t.minStake <= previous.minStake || t.discountBps < previous.discountBps || t.boostBps < previous.boostBps)
            {
                revert StakingManagerTierOutOfOrder(i);
            }
            _tiers[i] = t;
            previous = t;
        }
        for (uint256 i = n; i < _tierCount; ++i) {
            delete _tiers[i];
        }
        _tierCount = uint8(n);
        emit TiersChanged(newTiers);
    }

    function _setUnbondingDelay(uint64 delay) private {
        if (delay > MAX_UNBONDING_DELAY) revert StakingManagerUnbondingDelayTooLong(delay, MAX_UNBONDING_DELAY);
        emit UnbondingDelayChanged(_unbondingDelay, delay);
        _unbondingDelay = delay;
    }

    function _setTreasury(address treasury_) private {
        if (treasury_ == address(0)) revert StakingManagerZeroAddress();
        emit TreasuryChanged(_treasury, treasury_);
        _treasury = treasury_;
    }
}
