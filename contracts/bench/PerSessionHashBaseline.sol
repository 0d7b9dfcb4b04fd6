// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title PerSessionHashBaseline
/// @notice Benchmark baseline for SessionAnchor (bench/anchor_gas.py): every session's record hash
/// stored on-chain on its own, one transaction per session. Not deployed by Electra.
contract PerSessionHashBaseline {
    mapping(uint256 seq => bytes32) private _hashes;

    error PerSessionHashBaselineAlreadyStored(uint256 seq);

    event SessionHashStored(uint256 indexed seq, bytes32 recordHash);

    /// @notice Stores the record hash of session-log entry `seq`, once.
    function store(uint256 seq, bytes32 recordHash) external {
        if (_hashes[seq] != bytes32(0)) revert PerSessionHashBaselineAlreadyStored(seq);
        _hashes[seq] = recordHash;
        emit SessionHashStored(seq, recordHash);
    }

    /// @notice The stored record hash of `seq` (zero: none).
    function hashOf(uint256 seq) external view returns (bytes32) {
        return _hashes[seq];
    }
}
