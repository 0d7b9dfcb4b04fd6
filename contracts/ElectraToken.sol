// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {ERC20Votes} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Votes.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";

/// @title ElectraCoin (ELC)
/// @notice The network's token: ERC-20 with EIP-2612 permits and ERC-5805 votes on a timestamp
/// clock. A fixed genesis supply is minted at deployment; after that, only governance-approved
/// minters (the rewards distributor) can mint, and only under a cumulative cap that the timelock
/// (the owner) sets.
contract ElectraToken is ERC20, ERC20Permit, ERC20Votes, Ownable {
    /// @dev Total amount minters may mint over the token's life (genesis supply excluded).
    uint256 private _rewardMintCap;
    /// @dev Amount minters have minted so far.
    uint256 private _rewardMinted;
    mapping(address minter => bool) private _minters;

    error ElectraTokenUnauthorizedMinter(address account);
    error ElectraTokenRewardMintCapExceeded(uint256 requested, uint256 remaining);
    error ElectraTokenCapBelowMinted(uint256 newCap, uint256 minted);

    event RewardMintCapChanged(uint256 previousCap, uint256 newCap);
    event MinterSet(address indexed minter, bool allowed);
    event RewardMinted(address indexed minter, address indexed to, uint256 amount);

    /// @param governance The timelock that owns every parameter.
    /// @param genesisHolder Receives the genesis supply.
    /// @param genesisSupply Genesis supply in base units (18 decimals).
    /// @param initialRewardMintCap The first cumulative cap on reward minting.
    constructor(address governance, address genesisHolder, uint256 genesisSupply, uint256 initialRewardMintCap)
        ERC20("ElectraCoin", "ELC")
        ERC20Permit("ElectraCoin")
        Ownable(governance)
    {
        _rewardMintCap = initialRewardMintCap;
        emit RewardMintCapChanged(0, initialRewardMintCap);
        _mint(genesisHolder, genesisSupply);
    }

    /// @notice Mints reward tokens. Only allowed minters, and only under the cumulative cap.
    function mint(address to, uint256 amount) external {
        if (!_minters[msg.sender]) revert ElectraTokenUnauthorizedMinter(msg.sender);
        uint256 remaining = _rewardMintCap - _rewardMinted;
        if (amount > remaining) revert ElectraTokenRewardMintCapExceeded(amount, remaining);
        _rewardMinted += amount;
        _mint(to, amount);
        emit RewardMinted(msg.sender, to, amount);
    }

    /// @notice Sets the cumulative reward-mint cap. Governance only; never below what was minted.
    function setRewardMintCap(uint256 newCap) external onlyOwner {
        if (newCap < _rewardMinted) revert ElectraTokenCapBelowMinted(newCap, _rewardMinted);
        emit RewardMintCapChanged(_rewardMintCap, newCap);
        _rewardMintCap = newCap;
    }

    /// @notice Allows or disallows a minter. Governance only.
    function setMinter(address minter, bool allowed) external onlyOwner {
        _minters[minter] = allowed;
        emit MinterSet(minter, allowed);
    }

    /// @notice The cumulative cap on reward minting.
    function rewardMintCap() external view returns (uint256) {
        return _rewardMintCap;
    }

    /// @notice Reward tokens minted so far.
    function rewardMinted() external view returns (uint256) {
        return _rewardMinted;
    }

    /// @notice Whether `account` may mint rewards.
    function isMinter(address account) external view returns (bool) {
        return _minters[account];
    }

    /// @dev Timestamps, not block numbers: block times differ across the chains Electra runs on.
    function clock() public view override returns (uint48) {
        return uint48(block.timestamp);
    }

    /// @dev Machine-readable description of the clock (ERC-6372).
    // solhint-disable-next-line func-name-mixedcase
    function CLOCK_MODE() public pure override returns (string memory) {
        return "mode=timestamp";
    }

    function _update(address from, address to, uint256 value) internal override(ERC20, ERC20Votes) {
        super._update(from, to, value);
    }

    function nonces(address owner) public view override(ERC20Permit, Nonces) returns (uint256) {
        return super.nonces(owner);
    }
}
