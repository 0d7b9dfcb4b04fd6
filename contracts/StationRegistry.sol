// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {IERC4906} from "@openzeppelin/contracts/interfaces/IERC4906.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {Base64} from "@openzeppelin/contracts/utils/Base64.sol";
import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";

/// @title StationRegistry
/// @notice One ERC-721 token per charger. The token holds the charger's on-chain metadata and its
/// revenue rights: whoever holds the token is paid for sessions at that charger.
/// @dev Registration is self-service: the owner sends the transaction, and the charger proves it
/// holds its device key by signing the whole onboarding payload (EIP-712 `StationRegistration`).
/// The digest it signs is stored as the station's registration hash, so anyone can recompute it
/// from the `StationRegistered` event with standard EIP-712 tooling.
contract StationRegistry is ERC721, IERC4906, Ownable, EIP712, Nonces {
    using Strings for uint256;

    /// @notice What the owner submits at registration.
    struct StationInput {
        string chargerId; // OCPP charge point identity, [A-Za-z0-9*-_.:], 1..48 characters
        int32 latitudeE6; // microdegrees, -90e6..90e6
        int32 longitudeE6; // microdegrees, -180e6..180e6
        uint32 maxPowerW; // watts, > 0
        uint16 connectorTypes; // bit mask, see docs/contracts.md
        uint8 ocppVersions; // bit 0: OCPP 1.6J, bit 1: OCPP 2.0.1
        bool ocpiCompliant;
        bytes5 operatorId; // OCPI country code (2) + party id (3), upper-case letters and digits
        address device; // the charger's own key
        bytes32 metadataHash; // keccak256 of the full JSON metadata document
        string metadataURI; // where the full JSON metadata lives, at most MAX_URI_LENGTH bytes
    }

    /// @notice What the registry stores per charger.
    struct Station {
        int32 latitudeE6;
        int32 longitudeE6;
        uint32 maxPowerW;
        uint16 connectorTypes;
        uint8 ocppVersions;
        bool ocpiCompliant;
        bool deactivated; // by its owner
        bool suspended; // by governance
        uint40 registeredAt;
        bytes5 operatorId;
        address device;
        bytes32 metadataHash;
        bytes32 registrationHash;
        string chargerId;
        string metadataURI;
    }

    uint256 public constant MAX_CHARGER_ID_LENGTH = 48;
    uint256 public constant MAX_URI_LENGTH = 256;
    int32 private constant MAX_LATITUDE_E6 = 90_000_000;
    int32 private constant MAX_LONGITUDE_E6 = 180_000_000;
    uint16 private constant KNOWN_CONNECTORS = 0x01ff;
    uint8 private constant KNOWN_OCPP_VERSIONS = 0x03;

    bytes32 private constant REGISTRATION_TYPEHASH = keccak256(
        "StationRegistration(address owner,string chargerId,int32 latitudeE6,int32 longitudeE6,uint32 maxPowerW,"
        "uint16 connectorTypes,uint8 ocppVersions,bool ocpiCompliant,bytes5 operatorId,address device,"
        "bytes32 metadataHash,string metadataURI,uint256 nonce,uint256 deadline)"
    );

    uint256 private _lastTokenId;
    mapping(uint256 tokenId => Station) private _stations;
    mapping(bytes32 chargerIdHash => uint256 tokenId) private _tokenByChargerId;

    error StationRegistryInvalidChargerId(string chargerId);
    error StationRegistryChargerIdTaken(string chargerId, uint256 tokenId);
    error StationRegistryInvalidCoordinates(int32 latitudeE6, int32 longitudeE6);
    error StationRegistryInvalidMaxPower();
    error StationRegistryInvalidConnectorTypes(uint16 connectorTypes);
    error StationRegistryInvalidOcppVersions(uint8 ocppVersions);
    error StationRegistryInvalidOperatorId(bytes5 operatorId);
    error StationRegistryMetadataURITooLong(uint256 length, uint256 maxLength);
    error StationRegistryZeroDevice();
    error StationRegistryExpiredSignature(uint256 deadline);
    error StationRegistryInvalidDeviceSignature(address device);
    error StationRegistryUnknownStation(uint256 tokenId);
    error StationRegistryNotStationOwner(uint256 tokenId, address account);

    event StationRegistered(
        uint256 indexed tokenId,
        address indexed owner,
        address indexed device,
        string chargerId,
        bytes32 metadataHash,
        bytes32 registrationHash
    );
    event StationMetadataUpdated(uint256 indexed tokenId, bytes32 metadataHash, string metadataURI);
    event StationDeactivated(uint256 indexed tokenId);
    event StationActivated(uint256 indexed tokenId);
    event StationSuspensionChanged(uint256 indexed tokenId, bool suspended);

    constructor(address governance) ERC721("Electra Charger", "ECHG") Ownable(governance) EIP712("StationRegistry", "1") {}

    /// @notice Registers a charger and mints its token to the caller.
    /// @param s The charger's metadata.
    /// @param deadline Last timestamp at which the device signature is valid.
    /// @param deviceSignature The device key's EIP-712 signature over `StationRegistration`.
    /// @return tokenId The new token id (ids start at 1).
    function register(StationInput calldata s, uint256 deadline, bytes calldata deviceSignature)
        external
        returns (uint256 tokenId)
    {
        _validate(s);
        bytes32 idHash = keccak256(bytes(s.chargerId));
        uint256 existing = _tokenByChargerId[idHash];
        if (existing != 0) revert StationRegistryChargerIdTaken(s.chargerId, existing);
        if (block.timestamp > deadline) revert StationRegistryExpiredSignature(deadline);

        bytes32 digest = _hashTypedDataV4(_structHash(msg.sender, s, _useNonce(s.device), deadline));
        if (!SignatureChecker.isValidSignatureNow(s.device, digest, deviceSignature)) {
            revert StationRegistryInvalidDeviceSignature(s.device);
        }

        tokenId = ++_lastTokenId;
        _tokenByChargerId[idHash] = tokenId;
        Station storage st = _stations[tokenId];
        st.latitudeE6 = s.latitudeE6;
        st.longitudeE6 = s.longitudeE6;
        st.maxPowerW = s.maxPowerW;
        st.connectorTypes = s.connectorTypes;
        st.ocppVersions = s.ocppVersions;
        st.ocpiCompliant = s.ocpiCompliant;
        st.registeredAt = uint40(block.timestamp);
        st.operatorId = s.operatorId;
        st.device = s.device;
        st.metadataHash = s.metadataHash;
        st.registrationHash = digest;
        st.chargerId = s.chargerId;
        st.metadataURI = s.metadataURI;

        _mint(msg.sender, tokenId);
        emit StationRegistered(tokenId, msg.sender, s.device, s.chargerId, s.metadataHash, digest);
    }

    /// @notice Replaces the metadata document's hash and URI. Token owner or approved operator.
    function updateMetadata(uint256 tokenId, bytes32 metadataHash, string calldata metadataURI) external {
        _checkStationOwner(tokenId);
        if (bytes(metadataURI).length > MAX_URI_LENGTH) {
            revert StationRegistryMetadataURITooLong(bytes(metadataURI).length, MAX_URI_LENGTH);
        }
        Station storage st = _stations[tokenId];
        st.metadataHash = metadataHash;
        st.metadataURI = metadataURI;
        emit StationMetadataUpdated(tokenId, metadataHash, metadataURI);
        emit MetadataUpdate(tokenId);
    }

    /// @notice Takes a charger out of service (the central system refuses it). Token owner only.
    function deactivate(uint256 tokenId) external {
        _checkStationOwner(tokenId);
        _stations[tokenId].deactivated = true;
        emit StationDeactivated(tokenId);
        emit MetadataUpdate(tokenId);
    }

    /// @notice Puts a deactivated charger back in service. Token owner only.
    function activate(uint256 tokenId) external {
        _checkStationOwner(tokenId);
        _stations[tokenId].deactivated = false;
        emit StationActivated(tokenId);
        emit MetadataUpdate(tokenId);
    }

    /// @notice Suspends or reinstates a charger, e.g. after proven fraud. Governance only.
    function setSuspended(uint256 tokenId, bool suspended) external onlyOwner {
        _requireOwned(tokenId);
        _stations[tokenId].suspended = suspended;
        emit StationSuspensionChanged(tokenId, suspended);
        emit MetadataUpdate(tokenId);
    }

    /// @notice The stored metadata of a charger.
    function station(uint256 tokenId) external view returns (Station memory) {
        _requireOwned(tokenId);
        return _stations[tokenId];
    }

    /// @notice Whether a charger may take sessions: neither deactivated by its owner nor suspended.
    function isActive(uint256 tokenId) external view returns (bool) {
        _requireOwned(tokenId);
        Station storage st = _stations[tokenId];
        return !st.deactivated && !st.suspended;
    }

    /// @notice The token of a charge point identity, or 0 if none.
    function tokenIdOf(string calldata chargerId) external view returns (uint256) {
        return _tokenByChargerId[keccak256(bytes(chargerId))];
    }

    /// @notice The charger's device address.
    function deviceOf(uint256 tokenId) external view returns (address) {
        _requireOwned(tokenId);
        return _stations[tokenId].device;
    }

    /// @notice Number of chargers ever registered; token ids run from 1 to this.
    function totalStations() external view returns (uint256) {
        return _lastTokenId;
    }

    /// @notice The EIP-712 domain separator for device signatures.
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @notice ERC-721 metadata as an inline JSON document (data URI).
    function tokenURI(uint256 tokenId) public view override returns (string memory) {
        _requireOwned(tokenId);
        Station storage st = _stations[tokenId];
        bytes memory json = abi.encodePacked(
            '{"name":"Electra charger ',
            st.chargerId,
            '","description":"EV charger registered on Electra. Its holder receives its charging revenue.",',
            '"external_url":"',
            st.metadataURI,
            '","attributes":[',
            _attributesA(st),
            _attributesB(tokenId, st),
            "]}"
        );
        return string.concat("data:application/json;base64,", Base64.encode(json));
    }

    function supportsInterface(bytes4 interfaceId) public view override(ERC721, IERC165) returns (bool) {
        return interfaceId == bytes4(0x49064906) || super.supportsInterface(interfaceId);
    }

    function _attributesA(Station storage st) private view returns (bytes memory) {
        return abi.encodePacked(
            '{"trait_type":"charger_id","value":"',
            st.chargerId,
            '"},{"trait_type":"latitude","value":"',
            _microdegrees(st.latitudeE6),
            '"},{"trait_type":"longitude","value":"',
            _microdegrees(st.longitudeE6),
            '"},{"trait_type":"max_power_w","value":',
            uint256(st.maxPowerW).toString(),
            '},{"trait_type":"connector_types","value":',
            uint256(st.connectorTypes).toString(),
            '},{"trait_type":"ocpp_versions","value":',
            uint256(st.ocppVersions).toString(),
            "},"
        );
    }

    function _attributesB(uint256 tokenId, Station storage st) private view returns (bytes memory) {
        return abi.encodePacked(
            '{"trait_type":"ocpi_compliant","value":',
            st.ocpiCompliant ? "true" : "false",
            '},{"trait_type":"operator_id","value":"',
            _operatorId(st.operatorId),
            '"},{"trait_type":"device","value":"',
            Strings.toHexString(st.device),
            '"},{"trait_type":"metadata_hash","value":"',
            Strings.toHexString(uint256(st.metadataHash), 32),
            '"},{"trait_type":"registration_hash","value":"',
            Strings.toHexString(uint256(st.registrationHash), 32),
            '"},{"trait_type":"active","value":',
            (!st.deactivated && !st.suspended) ? "true" : "false",
            '},{"trait_type":"token_id","value":',
            tokenId.toString(),
            "}"
        );
    }

    function _structHash(address owner_, StationInput calldata s, uint256 nonce, uint256 deadline)
        private
        pure
        returns (bytes32)
    {
        // Two abi.encode halves concatenated equal one abi.encode of all static words; split only
        // to stay within the EVM's stack.
        return keccak256(
            bytes.concat(
                abi.encode(
                    REGISTRATION_TYPEHASH,
                    owner_,
                    keccak256(bytes(s.chargerId)),
                    s.latitudeE6,
                    s.longitudeE6,
                    s.maxPowerW,
                    s.connectorTypes,
                    s.ocppVersions
                ),
                abi.encode(
                    s.ocpiCompliant,
                    s.operatorId,
                    s.device,
                    s.metadataHash,
                    keccak256(bytes(s.metadataURI)),
                    nonce,
                    deadline
                )
            )
        );
    }

    function _validate(StationInput calldata s) private pure {
        bytes calldata id = bytes(s.chargerId);
        if (id.length == 0 || id.length > MAX_CHARGER_ID_LENGTH) revert StationRegistryInvalidChargerId(s.chargerId);
        for (uint256 i = 0; i < id.length; ++i) {
            bytes1 c = id[i];
            bool ok = (c >= "0" && c <= "9") || (c >= "A" && c <= "Z") || (c >= "a" && c <= "z") || c == "-"
                || c == "_" || c == "." || c == ":" || c == "*";
            if (!ok) revert StationRegistryInvalidChargerId(s.chargerId);
        }
        if (
            s.latitudeE6 < -MAX_LATITUDE_E6 || s.latitudeE6 > MAX_LATITUDE_E6 || s.longitudeE6 < -MAX_LONGITUDE_E6
                || s.longitudeE6 > MAX_LONGITUDE_E6
        ) revert StationRegistryInvalidCoordinates(s.latitudeE6, s.longitudeE6);
        if (s.maxPowerW == 0) revert StationRegistryInvalidMaxPower();
        if (s.connectorTypes == 0 || s.connectorTypes & ~KNOWN_CONNECTORS != 0) {
            revert StationRegistryInvalidConnectorTypes(s.connectorTypes);
        }
        if (s.ocppVersions == 0 || s.ocppVersions & ~KNOWN_OCPP_VERSIONS != 0) {
            revert StationRegistryInvalidOcppVersions(s.ocppVersions);
        }
        for (uint256 i = 0; i < 5; ++i) {
            bytes1 c = s.operatorId[i];
            bool ok = (c >= "0" && c <= "9") || (c >= "A" && c <= "Z");
            if (!ok) revert StationRegistryInvalidOperatorId(s.operatorId);
        }
        if (s.device == address(0)) revert StationRegistryZeroDevice();
        if (bytes(s.metadataURI).length > MAX_URI_LENGTH) {
            revert StationRegistryMetadataURITooLong(bytes(s.metadataURI).length, MAX_URI_LENGTH);
        }
    }

    function _checkStationOwner(uint256 tokenId) private view {
        address holder = _requireOwned(tokenId);
        if (!_isAuthorized(holder, msg.sender, tokenId)) revert StationRegistryNotStationOwner(tokenId, msg.sender);
    }

    /// @dev Signed microdegrees as a decimal string with six places, e.g. -3.703790.
    function _microdegrees(int32 v) private pure returns (string memory) {
        uint256 a = v < 0 ? uint256(-int256(v)) : uint256(int256(v));
        string memory frac = (a % 1_000_000).toString();
        while (bytes(frac).length < 6) frac = string.concat("0", frac);
        return string.concat(v < 0 ? "-" : "", (a / 1_000_000).toString(), ".", frac);
    }

    /// @dev "DEELC" reads as "DE*ELC", the OCPI/eMI3 way of writing a party.
    function _operatorId(bytes5 op) private pure returns (string memory) {
        return string(abi.encodePacked(op[0], op[1], "*", op[2], op[3], op[4]));
    }
}
