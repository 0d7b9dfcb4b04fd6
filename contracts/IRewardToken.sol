// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @title IRewardToken
/// @notice What RewardsDistributor needs of ELC: an ERC-20 whose governance-approved minters may
/// mint rewards under a cumulative cap (ElectraToken).
interface IRewardToken is IERC20 {
    /// @notice Mints `amount` to `to`. Reverts unless the caller is an allowed minter and the
    /// amount fits under the reward mint cap.
    function mint(address to, uint256 amount) external;
}
