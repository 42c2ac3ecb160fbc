// No WebRTC in a data centre: anything that tries to open a WebRTC connection fails clearly.
class Unsupported {
  constructor() {
    throw new Error('WebRTC is not available in zedge-p2p (TCP peers only)');
  }
}
export const RTCPeerConnection = Unsupported;
export const RTCSessionDescription = Unsupported;
export const RTCIceCandidate = Unsupported;
export const RTCDataChannel = Unsupported;
export default { RTCPeerConnection, RTCSessionDescription, RTCIceCandidate, RTCDataChannel };
