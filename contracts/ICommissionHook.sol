// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title ICommissionHook
/// @notice Lets the protocol's commission depend on something outside PaymentHub, such as the
/// staking tier of the charger's host. Governance sets the hook on PaymentHub; address zero means
/// the flat protocol fee applies to every session.
/// @dev PaymentHub calls the hook once per settled session with a fixed gas allowance
/// (`PaymentHub.COMMISSION_HOOK_GAS`). If the call fails or returns malformed data, the flat fee
/// applies; an answer above `PaymentHub.MAX_FEE_BPS` is capped at it. So a broken hook can never
/// stop settlement or take more than the cap.
interface ICommissionHook {
    /// @notice The commission, in basis points of the session's amount, for a session at a charger.
    /// @param chargerId The StationRegistry token id of the charger.
    /// @param payee Who holds the charger's NFT and receives the session's revenue.
    /// @param asset The ERC-20 the session is paid in.
    /// @param protocolFeeBps The flat protocol fee governance set, for hooks that discount from it.
    function commissionBps(uint256 chargerId, address payee, address asset, uint256 protocolFeeBps)
        external
        view
        returns (uint256);
}
