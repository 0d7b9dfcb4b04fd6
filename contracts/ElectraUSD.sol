// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title Electra USD (eUSD)
/// @notice The development stand-in for a fiat-backed stablecoin: a plain ERC-20 with 6 decimals
/// (like USDC) and EIP-2612 permits. The platform mints it against fiat top-ups (minter role, held
/// by the operator account) and burns it when fiat is paid out. On a public chain a real
/// stablecoin takes its place and this contract is not deployed.
contract ElectraUSD is ERC20, ERC20Burnable, ERC20Permit, AccessControl {
    /// @notice May mint against fiat received.
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// @notice Tokens minted against a fiat top-up; `topUpId` is the payment provider's id of it.
    event ToppedUp(address indexed to, uint256 amount, bytes32 indexed topUpId);

    /// @param admin Grants and revokes roles (the timelock).
    /// @param minter The platform's operator account.
    constructor(address admin, address minter) ERC20("Electra USD", "eUSD") ERC20Permit("Electra USD") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(MINTER_ROLE, minter);
    }

    /// @notice Mints `amount` base units to `to` against a fiat top-up. Minters only.
    /// @param topUpId The payment provider's id of the top-up, for reconciliation.
    function mint(address to, uint256 amount, bytes32 topUpId) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
        emit ToppedUp(to, amount, topUpId);
    }

    /// @notice 6 decimals: one base unit is one micro-dollar.
    function decimals() public pure override returns (uint8) {
        return 6;
    }
}
