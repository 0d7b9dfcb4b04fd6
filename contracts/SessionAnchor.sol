// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @title SessionAnchor
/// @notice Merkle roots of the platform's off-chain session log, one per batch of consecutive log
/// sequence numbers. A batch's root is an OpenZeppelin StandardMerkleTree root over the sessions'
/// leaves (keccak256(keccak256(abi.encode(values))), sorted pairs; docs/formats.md), so anyone
/// holding a session's values and proof checks it here without trusting the platform's database.
/// @dev Batches cover the sequence numbers 1, 2, 3, ... without gap or overlap: a batch must start
/// right after the last anchored one. That makes anchoring exactly-once: sending a batch again
/// reverts with `SessionAnchorAlreadyAnchored(batchIndex)`, which an anchoring worker reads as
/// "done". A batch costs two new storage slots (the root; first, last sequence and time packed in
/// one) and one rewritten slot (the count and last sequence), so its gas hardly depends on its size.
contract SessionAnchor is Ownable, Pausable {
    /// @notice One anchored batch, as `anchor` returns it.
    struct Anchor {
        bytes32 root; // StandardMerkleTree root over the batch's session leaves
        uint64 firstSeq; // the batch's first session-log sequence number
        uint64 lastSeq; // its last; the batch holds every sequence number from first to last
        uint64 count; // lastSeq - firstSeq + 1: the number of leaves of the tree
        uint64 anchoredAt; // block timestamp of the anchoring transaction
    }

    /// @dev What is stored per batch: two slots.
    struct StoredAnchor {
        bytes32 root;
        uint64 firstSeq;
        uint64 lastSeq;
        uint64 anchoredAt;
    }

    /// @notice The sequence number the first batch starts at.
    uint64 public constant FIRST_SEQ = 1;

    /// @dev Read and rewritten by every anchoring: one slot.
    struct Head {
        uint64 anchorCount;
        uint64 lastSeq;
        // Keeps the slot non-zero from the constructor on, so the first anchoring pays 2,900 gas
        // to rewrite it, like every later one, instead of 20,000.
        bool inUse;
    }
    Head private _head;
    address private _guardian;
    mapping(address account => bool) private _anchorers;
    mapping(uint256 batchIndex => StoredAnchor) private _anchors;

    error SessionAnchorZeroAddress();
    error SessionAnchorZeroRoot();
    error SessionAnchorUnauthorizedAnchorer(address account);
    error SessionAnchorUnauthorizedGuardian(address account);
    error SessionAnchorInvalidRange(uint256 firstSeq, uint256 lastSeq);
    error SessionAnchorGap(uint256 firstSeq, uint256 expectedFirstSeq);
    error SessionAnchorOverlap(uint256 firstSeq, uint256 expectedFirstSeq);
    error SessionAnchorAlreadyAnchored(uint256 batchIndex);
    error SessionAnchorRootMismatch(uint256 batchIndex, bytes32 anchoredRoot);
    error SessionAnchorUnknownBatch(uint256 batchIndex);
    error SessionAnchorNotAnchored(uint256 seq);

    event SessionsAnchored(uint256 indexed batchIndex, bytes32 root, uint64 firstSeq, uint64 lastSeq);
    event AnchorerChanged(address indexed account, bool allowed);
    event GuardianChanged(address previousGuardian, address newGuardian);

    modifier onlyAnchorer() {
        if (!_anchorers[msg.sender]) revert SessionAnchorUnauthorizedAnchorer(msg.sender);
        _;
    }

    /// @param governance The timelock: grants and revokes the anchorer role, sets the guardian,
    /// unpauses.
    /// @param anchorer The platform's operator account, allowed to anchor (zero: none yet).
    /// @param guardian_ May pause (zero: none yet).
    constructor(address governance, address anchorer, address guardian_) Ownable(governance) {
        if (anchorer != address(0)) _setAnchorer(anchorer, true);
        if (guardian_ != address(0)) {
            _guardian = guardian_;
            emit GuardianChanged(address(0), guardian_);
        }
        _head = Head(0, FIRST_SEQ - 1, true);
    }

    // ---------------------------------------------------------------- anchoring

    /// @notice Anchors the Merkle root of the session-log batch `firstSeq..lastSeq` (both
    /// included), which must start right after the last anchored batch. Anchorer only.
    /// @dev The same batch sent again reverts with `SessionAnchorAlreadyAnchored`; the same range
    /// with another root with `SessionAnchorRootMismatch`; any other overlap with
    /// `SessionAnchorOverlap`, a gap with `SessionAnchorGap`.
    /// @param root The StandardMerkleTree root over the batch's `lastSeq - firstSeq + 1` leaves.
    /// @return batchIndex The new batch's index, counting from 0.
    function anchorSessions(bytes32 root, uint64 firstSeq, uint64 lastSeq)
        external
        whenNotPaused
        onlyAnchorer
        returns (uint256 batchIndex)
    {
        if (root == bytes32(0)) revert SessionAnchorZeroRoot();
        if (lastSeq < firstSeq) revert SessionAnchorInvalidRange(firstSeq, lastSeq);
        Head memory head = _head;
        uint64 count = head.anchorCount;
        uint64 previousLast = head.lastSeq;
        if (uint256(firstSeq) != uint256(previousLast) + 1) _revertOutOfOrder(root, firstSeq, lastSeq, previousLast);
        batchIndex = count;
        _anchors[batchIndex] = StoredAnchor(root, firstSeq, lastSeq, uint64(block.timestamp));
        // Fewer than 2^64 batches: each takes at least one sequence number, and they are uint64.
        unchecked {
            _head = Head(count + 1, lastSeq, true);
        }
        emit SessionsAnchored(batchIndex, root, firstSeq, lastSeq);
    }

    // ---------------------------------------------------------------- views

    /// @notice How many batches are anchored; their indexes run from 0 to anchorCount() - 1.
    function anchorCount() external view returns (uint256) {
        return _head.anchorCount;
    }

    /// @notice The last anchored sequence number (FIRST_SEQ - 1 before the first batch).
    function lastAnchoredSeq() external view returns (uint256) {
        return _head.lastSeq;
    }

    /// @notice One anchored batch.
    function anchor(uint256 batchIndex) external view returns (Anchor memory) {
        StoredAnchor storage a = _stored(batchIndex);
        return Anchor(a.root, a.firstSeq, a.lastSeq, a.lastSeq - a.firstSeq + 1, a.anchoredAt);
    }

    /// @notice The index of the batch that holds sequence number `seq`.
    function anchorOf(uint256 seq) external view returns (uint256 batchIndex) {
        return _anchorOf(seq);
    }

    /// @notice Whether `leaf` is in batch `batchIndex`'s tree, by `proof`.
    /// @param leaf The StandardMerkleTree leaf hash: keccak256(keccak256(abi.encode(values))).
    /// @param proof The sibling hashes from the leaf up, as `@openzeppelin/merkle-tree` gives them.
    function verify(uint256 batchIndex, bytes32 leaf, bytes32[] calldata proof) external view returns (bool) {
        return MerkleProof.verifyCalldata(proof, _stored(batchIndex).root, leaf);
    }

    /// @notice Whether `leaf` is in the tree of the batch that holds sequence number `seq`.
    /// @dev A StandardMerkleTree does not commit to leaf positions: this proves the leaf is in the
    /// batch, and the leaf's own values say which session it is.
    function verifySession(uint256 seq, bytes32 leaf, bytes32[] calldata proof) external view returns (bool) {
        return MerkleProof.verifyCalldata(proof, _anchors[_anchorOf(seq)].root, leaf);
    }

    /// @notice Whether `account` may anchor.
    function isAnchorer(address account) external view returns (bool) {
        return _anchorers[account];
    }

    /// @notice The account that may pause anchoring besides governance (zero: none).
    function guardian() external view returns (address) {
        return _guardian;
    }

    // ---------------------------------------------------------------- governance and guardian

    /// @notice Allows or disallows an account to anchor. Governance only.
    function setAnchorer(address account, bool allowed) external onlyOwner {
        _setAnchorer(account, allowed);
    }

    /// @notice Sets the pause guardian (address zero: none). Governance only.
    function setGuardian(address guardian_) external onlyOwner {
        emit GuardianChanged(_guardian, guardian_);
        _guardian = guardian_;
    }

    /// @notice Stops anchoring; the views (and so verification) keep working. The guardian or
    /// governance.
    function pause() external {
        if (msg.sender != _guardian && msg.sender != owner()) revert SessionAnchorUnauthorizedGuardian(msg.sender);
        _pause();
    }

    /// @notice Resumes anchoring after a pause. Governance only.
    function unpause() external onlyOwner {
        _unpause();
    }

    // ---------------------------------------------------------------- internals

    function _stored(uint256 batchIndex) private view returns (StoredAnchor storage) {
        if (batchIndex >= _head.anchorCount) revert SessionAnchorUnknownBatch(batchIndex);
        return _anchors[batchIndex];
    }

    /// @dev Binary search for the first batch whose lastSeq is at least `seq`. Batches are
    /// contiguous from FIRST_SEQ, so that batch holds `seq`.
    function _anchorOf(uint256 seq) private view returns (uint256) {
        Head memory head = _head;
        if (seq < FIRST_SEQ || seq > head.lastSeq) revert SessionAnchorNotAnchored(seq);
        uint256 low = 0;
        uint256 high = head.anchorCount - 1;
        while (low < high) {
            uint256 mid = (low + high) / 2;
            if (_anchors[mid].lastSeq < seq) low = mid + 1;
            else high = mid;
        }
        return low;
    }

    /// @dev Why a batch that does not start at `previousLast + 1` is refused.
    function _revertOutOfOrder(bytes32 root, uint64 firstSeq, uint64 lastSeq, uint64 previousLast) private view {
        uint256 expected = uint256(previousLast) + 1;
        if (firstSeq > expected) revert SessionAnchorGap(firstSeq, expected);
        if (firstSeq < FIRST_SEQ) revert SessionAnchorInvalidRange(firstSeq, lastSeq);
        // FIRST_SEQ <= firstSeq <= previousLast: some batch holds it.
        uint256 i = _anchorOf(firstSeq);
        StoredAnchor storage a = _anchors[i];
        if (a.firstSeq == firstSeq && a.lastSeq == lastSeq) {
            if (a.root == root) revert SessionAnchorAlreadyAnchored(i);
            revert SessionAnchorRootMismatch(i, a.root);
        }
        revert SessionAnchorOverlap(firstSeq, expected);
    }

    function _setAnchorer(address account, bool allowed) private {
        if (account == address(0)) revert SessionAnchorZeroAddress();
        _anchorers[account] = allowed;
        emit AnchorerChanged(account, allowed);
    }
}
