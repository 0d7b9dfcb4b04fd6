// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {IRewardToken} from "./IRewardToken.sol";

/// @title RewardsDistributor
/// @notice Usage-mining rewards in ELC, one Merkle root per epoch. The platform's publisher
/// computes each account's reward for an epoch off-chain, builds an OpenZeppelin
/// StandardMerkleTree over the leaves (epoch, account, amount) and publishes its root with the
/// epoch's total; publishing mints that total into this contract under the token's reward mint
/// cap. Anyone may then claim an account's reward with its proof; the tokens go to the account.
/// @dev Leaf: keccak256(bytes.concat(keccak256(abi.encode(uint256 epoch, address account,
/// uint256 amount)))), so OpenZeppelin's npm merkle-tree package, with the leaf encoding
/// ["uint256", "address", "uint256"], builds the tree and its proofs (docs/formats.md). A claim is
/// keyed by (epoch, account): one leaf per account per epoch. Claims of an epoch never exceed its
/// published total, and the total never exceeds the epoch cap governance set, so a wrong or
/// malicious tree cannot pay out more than the cap. Minting at publication, not per claim, makes a
/// claim a plain transfer (no supply checkpoint per claim).
contract RewardsDistributor is Ownable {
    using SafeERC20 for IRewardToken;

    /// @notice A published epoch.
    struct Epoch {
        bytes32 root; // StandardMerkleTree root over the epoch's leaves
        uint96 total; // what the epoch may pay out, minted at publication; <= the epoch cap then
        uint96 claimed; // what has been claimed so far
        uint64 publishedAt; // block timestamp of publication
    }

    /// @notice One epoch's claim in `claimEpochs`.
    struct Claim {
        uint256 epoch;
        uint256 amount;
        bytes32[] proof;
    }

    /// @notice The number of the first epoch; each later one is the previous one + 1.
    uint256 public constant FIRST_EPOCH = 1;

    IRewardToken private immutable _token;
    address private _publisher;
    uint96 private _epochCap;
    uint256 private _lastEpoch;
    mapping(uint256 epoch => Epoch) private _epochs;
    mapping(uint256 epoch => mapping(address account => bool)) private _claimed;

    error RewardsDistributorZeroAddress();
    error RewardsDistributorZeroRoot();
    error RewardsDistributorZeroAmount();
    error RewardsDistributorUnauthorizedPublisher(address account);
    error RewardsDistributorEpochOutOfOrder(uint256 epoch, uint256 expectedEpoch);
    error RewardsDistributorAlreadyPublished(uint256 epoch);
    error RewardsDistributorEpochCapExceeded(uint256 epoch, uint256 total, uint256 epochCap);
    error RewardsDistributorEpochCapTooLarge(uint256 epochCap, uint256 maxEpochCap);
    error RewardsDistributorUnknownEpoch(uint256 epoch);
    error RewardsDistributorAlreadyClaimed(uint256 epoch, address account);
    error RewardsDistributorInvalidProof(uint256 epoch, address account, uint256 amount);
    error RewardsDistributorEpochExhausted(uint256 epoch, uint256 amount, uint256 remaining);

    event EpochPublished(uint256 indexed epoch, bytes32 root, uint256 total);
    event RewardClaimed(uint256 indexed epoch, address indexed account, uint256 amount);
    event EpochCapChanged(uint256 previousCap, uint256 newCap);
    event PublisherChanged(address previousPublisher, address newPublisher);

    /// @param governance The timelock: sets the epoch cap and the publisher.
    /// @param token_ ELC; this contract must be one of its minters (ElectraToken.setMinter).
    /// @param publisher_ May publish epochs (zero: nobody yet).
    /// @param epochCap_ Most one epoch may pay out, ELC base units.
    constructor(address governance, IRewardToken token_, address publisher_, uint256 epochCap_) Ownable(governance) {
        if (address(token_) == address(0)) revert RewardsDistributorZeroAddress();
        _token = token_;
        _setPublisher(publisher_);
        _setEpochCap(epochCap_);
    }

    // ---------------------------------------------------------------- publishing

    /// @notice Publishes epoch `epoch`'s Merkle root and total, and mints the total into this
    /// contract. Publisher only. Epochs are published in order, each exactly once: sending the
    /// same epoch again reverts with `RewardsDistributorAlreadyPublished`, which a worker reads as
    /// "done".
    /// @param epoch lastEpoch() + 1.
    /// @param root The StandardMerkleTree root over the epoch's (epoch, account, amount) leaves.
    /// @param total The sum of the leaves' amounts; at most epochCap().
    function publishEpoch(uint256 epoch, bytes32 root, uint256 total) external {
        if (msg.sender != _publisher) revert RewardsDistributorUnauthorizedPublisher(msg.sender);
        if (root == bytes32(0)) revert RewardsDistributorZeroRoot();
        if (total == 0) revert RewardsDistributorZeroAmount();
        uint256 expected = _lastEpoch + 1;
        if (epoch != expected) {
            Epoch storage published = _epochs[epoch];
            if (epoch < expected && published.root == root && published.total == total) {
                revert RewardsDistributorAlreadyPublished(epoch);
            }
            revert RewardsDistributorEpochOutOfOrder(epoch, expected);
        }
        uint256 cap = _epochCap;
        if (total > cap) revert RewardsDistributorEpochCapExceeded(epoch, total, cap);
        _epochs[epoch] = Epoch(root, uint96(total), 0, uint64(block.timestamp));
        _lastEpoch = epoch;
        _token.mint(address(this), total);
        emit EpochPublished(epoch, root, total);
    }

    // ---------------------------------------------------------------- claiming

    /// @notice Claims `account`'s reward for one epoch and sends it to `account`. Anyone may send
    /// the claim (a relayer, the platform); the reward only ever goes to the account in the leaf.
    /// @param proof The sibling hashes from the leaf up, as `@openzeppelin/merkle-tree` gives them.
    function claim(uint256 epoch, address account, uint256 amount, bytes32[] calldata proof) external {
        _claim(epoch, account, amount, proof);
        _token.safeTransfer(account, amount);
    }

    /// @notice Claims `account`'s rewards for several epochs in one transfer.
    /// @return amount The sum claimed, ELC base units.
    function claimEpochs(address account, Claim[] calldata claims) external returns (uint256 amount) {
        for (uint256 i = 0; i < claims.length; ++i) {
            Claim calldata c = claims[i];
            _claim(c.epoch, account, c.amount, c.proof);
            amount += c.amount;
        }
        if (amount == 0) revert RewardsDistributorZeroAmount();
        _token.safeTransfer(account, amount);
    }

    // ---------------------------------------------------------------- views

    /// @notice One published epoch.
    function publishedEpoch(uint256 epochNumber) external view returns (Epoch memory) {
        Epoch memory e = _epochs[epochNumber];
        if (e.root == bytes32(0)) revert RewardsDistributorUnknownEpoch(epochNumber);
        return e;
    }

    /// @notice The last published epoch (FIRST_EPOCH - 1 before the first).
    function lastEpoch() external view returns (uint256) {
        return _lastEpoch;
    }

    /// @notice Whether `account` claimed its reward for `epochNumber`.
    function isClaimed(uint256 epochNumber, address account) external view returns (bool) {
        return _claimed[epochNumber][account];
    }

    /// @notice Whether `proof` shows (epoch, account, amount) is in the epoch's tree (false for an
    /// unpublished epoch).
    function verify(uint256 epochNumber, address account, uint256 amount, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        bytes32 root = _epochs[epochNumber].root;
        return root != bytes32(0) && MerkleProof.verifyCalldata(proof, root, leaf(epochNumber, account, amount));
    }

    /// @notice The StandardMerkleTree leaf of (epoch, account, amount).
    function leaf(uint256 epochNumber, address account, uint256 amount) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(epochNumber, account, amount))));
    }

    /// @notice Most one epoch may pay out, ELC base units.
    function epochCap() external view returns (uint256) {
        return _epochCap;
    }

    /// @notice The account that publishes epochs (zero: nobody).
    function publisher() external view returns (address) {
        return _publisher;
    }

    /// @notice The reward token (ELC).
    function token() external view returns (address) {
        return address(_token);
    }

    // ---------------------------------------------------------------- governance

    /// @notice Sets the most one epoch may pay out, for epochs published from now on. Governance
    /// only.
    function setEpochCap(uint256 newCap) external onlyOwner {
        _setEpochCap(newCap);
    }

    /// @notice Sets the account that publishes epochs (zero: nobody). Governance only.
    function setPublisher(address newPublisher) external onlyOwner {
        _setPublisher(newPublisher);
    }

    // ---------------------------------------------------------------- internals

    function _claim(uint256 epochNumber, address account, uint256 amount, bytes32[] calldata proof) private {
        if (amount == 0) revert RewardsDistributorZeroAmount();
        Epoch storage e = _epochs[epochNumber];
        bytes32 root = e.root;
        if (root == bytes32(0)) revert RewardsDistributorUnknownEpoch(epochNumber);
        if (_claimed[epochNumber][account]) revert RewardsDistributorAlreadyClaimed(epochNumber, account);
        if (!MerkleProof.verifyCalldata(proof, root, leaf(epochNumber, account, amount))) {
            revert RewardsDistributorInvalidProof(epochNumber, account, amount);
        }
        uint256 claimed = e.claimed;
        uint256 remaining = e.total - claimed;
        if (amount > remaining) revert RewardsDistributorEpochExhausted(epochNumber, amount, remaining);
        _claimed[epochNumber][account] = true;
        // claimed + amount <= total < 2^96
        e.claimed = uint96(claimed + amount);
        emit RewardClaimed(epochNumber, account, amount);
    }

    function _setEpochCap(uint256 newCap) private {
        if (newCap > type(uint96).max) revert RewardsDistributorEpochCapTooLarge(newCap, type(uint96).max);
        emit EpochCapChanged(_epochCap, newCap);
        _epochCap = uint96(newCap);
    }

    function _setPublisher(address newPublisher) private {
        emit PublisherChanged(_publisher, newPublisher);
        _publisher = newPublisher;
    }
}
